"""The base of every embedded engine: its ports, its data directory, its processes and its settings."""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from shared.dev.process import (
    HOST,
    EngineError,
    ManagedProcess,
    StartCancelled,
    StopPolicy,
    StopTarget,
    stop_targets,
)


@dataclass(frozen=True)
class EngineContext:
    """What the stack hands every engine it starts."""

    data_dir: Path
    logs_dir: Path
    startup_timeout: float
    cancel: threading.Event
    # Called with each process as soon as it runs, so the pid file knows it even if start-up fails later.
    on_spawn: Callable[[StopTarget], None]
    # The caller's TRIBE_* variables, for settings an engine honours (e.g. the S3 bucket name).
    external: Mapping[str, str]


class Engine(abc.ABC):
    """One engine the stack can start: subclasses say how to run it, probe it and describe it as settings."""

    name: ClassVar[str]
    # The TRIBE_* variable that, when given, means "use that one, start nothing"; then the extra ones.
    env_var: ClassVar[str]
    extra_env_vars: ClassVar[tuple[str, ...]] = ()
    # Names of the ports the engine needs, the client-facing one first.
    port_names: ClassVar[tuple[str, ...]]

    def __init__(self, ctx: EngineContext, ports: Mapping[str, int]) -> None:
        self.ctx = ctx
        self.ports = dict(ports)
        self.processes: list[ManagedProcess] = []

    @property
    def port(self) -> int:
        """The client-facing port."""
        return self.ports[self.port_names[0]]

    @property
    def address(self) -> str:
        """Where clients reach the engine, for status lines."""
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The engine's log file."""
        return self.ctx.logs_dir / f"{self.name}.log"

    def data_path(self, *parts: str) -> Path:
        """A path under the engine's own data directory."""
        return self.ctx.data_dir.joinpath(self.name, *parts)

    @abc.abstractmethod
    def start(self) -> None:
        """Start the engine's processes and return once it answers like its clients need."""

    @abc.abstractmethod
    def env(self) -> dict[str, str]:
        """The TRIBE_* variables pointing at the running engine."""

    @classmethod
    def stop_leftovers(cls, data_dir: Path) -> bool:
        """Stop a server of this engine still running on ``data_dir`` that no pid record knows; return if found."""
        return False

    def after_stop(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Clean up after the processes exited (e.g. stray socket files)."""

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        policy: StopPolicy | None = None,
    ) -> ManagedProcess:
        """Start one process of this engine, logging to its log file, and record it."""
        if self.ctx.cancel.is_set():
            raise StartCancelled(f"{self.name}: start cancelled")
        process = ManagedProcess(self.name, argv, log_path=self.log_path, cwd=cwd, env=env, user=user, policy=policy)
        target = process.start()
        self.processes.append(process)
        self.ctx.on_spawn(target)
        return process

    def wait_ready(self, process: ManagedProcess, probe: Callable[[], bool], what: str = "ready") -> None:
        """Poll ``probe`` until the engine answers, within the stack's start-up timeout."""
        process.wait_until(probe, timeout=self.ctx.startup_timeout, cancel=self.ctx.cancel, what=what)

    def stop(self, budget: float = 10.0) -> list[str]:
        """Stop the engine's processes (gracefully, then by force within ``budget`` seconds); who survived.

        The engine keeps its ports and data, so :meth:`start` brings the same engine back at the
        same address (tests use this to restart NATS under a running gateway).
        """
        survivors = stop_targets(self.stop_targets(), budget)
        with contextlib.suppress(OSError):
            self.after_stop()
        self.processes = [p for p in self.processes if p.running()]
        return survivors

    def restart(self) -> None:
        """Stop, then start again on the same ports and data."""
        survivors = self.stop()
        if survivors:
            raise EngineError(f"{self.name}: could not stop {', '.join(survivors)}")
        self.start()

    def stop_targets(self) -> list[StopTarget]:
        """The engine's running processes, to stop."""
        return [p.target() for p in self.processes if p.running()]
