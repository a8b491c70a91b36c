"""The embedded engine supervisor: starts Postgres, Redis, NATS, S3, Stripe, SMTP and push for `tribe up` and the tests.

Everything lives under the data directory, so a restart keeps all data and (ports permitting) the same URLs::

    ports.json      ports chosen last time, reused when still free
    pids.json       engine processes while they run (for the reaper and for the next owner)
    .lock           one owner at a time
    logs/<engine>.log
    postgres/  redis/  nats/  s3/  stripe/  mail/*.eml  push/*.json
"""

from __future__ import annotations

import atexit
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from shared.dev.engine import Engine, EngineContext
from shared.dev.lock import DataDirLock
from shared.dev.nats import NatsEngine
from shared.dev.postgres import PostgresEngine
from shared.dev.process import (
    EngineError,
    PidFile,
    StartCancelled,
    StopTarget,
    free_port,
    lost_port_race,
    port_is_free,
    python_child_env,
    python_module_argv,
    stop_recorded,
    stop_targets,
)
from shared.dev.push_sink import PushSinkEngine
from shared.dev.reaper import PIDS_FILE, STOPPED_CLEANLY
from shared.dev.redis import RedisEngine
from shared.dev.s3 import S3Engine
from shared.dev.smtp_sink import SmtpSinkEngine
from shared.dev.stripe import LocalStripeEngine

__all__ = ["ENGINES", "EmbeddedStack", "EngineError", "engine_variables"]

ENGINES: tuple[type[Engine], ...] = (
    PostgresEngine,
    RedisEngine,
    NatsEngine,
    S3Engine,
    LocalStripeEngine,
    SmtpSinkEngine,
    PushSinkEngine,
)
PORTS_FILE = "ports.json"
STOP_BUDGET = 10.0
PORT_RACE_ATTEMPTS = 3


def engine_variables() -> frozenset[str]:
    """Every TRIBE_* variable the stack sets."""
    return frozenset(v for e in ENGINES for v in (e.env_var, *e.extra_env_vars))


class EmbeddedStack:
    """Starts the engines whose URL is not given, under data_dir."""

    def __init__(
        self,
        data_dir: Path,
        external: Mapping[str, str] | None = None,
        on_status: Callable[[str], None] | None = None,
        *,
        ports: Mapping[str, int] | None = None,
        reserved_ports: Iterable[int] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        """``external``: TRIBE_* values (empty ones count as unset); ``ports``: fixed ports by name;
        ``reserved_ports``: ports the caller will listen on, never given to an engine."""
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.external = {k: v for k, v in (external or {}).items() if k.startswith("TRIBE_")}
        self._on_status = on_status
        self._fixed_ports = dict(ports or {})
        unknown = set(self._fixed_ports) - {n for e in ENGINES for n in e.port_names}
        if unknown:
            known = ", ".join(n for e in ENGINES for n in e.port_names)
            raise ValueError(f"unknown port name(s) {sorted(unknown)}; known: {known}")
        self.startup_timeout = startup_timeout
        self._engines: list[Engine] = []
        self._env: dict[str, str] = {}
        self._lock = DataDirLock(self.data_dir, "stack")
        self._pids = PidFile(self.data_dir / PIDS_FILE)
        self._reaper: subprocess.Popen[bytes] | None = None
        self._cancel = threading.Event()
        self._state_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._ports_lock = threading.Lock()
        self._reserved = frozenset(reserved_ports)
        self._taken_ports: set[int] = set(self._reserved)
        self._started = False

    # --- public surface ------------------------------------------------------------------------

    @property
    def mail_dir(self) -> Path:
        """Where the SMTP sink stores received mail (``<data_dir>/mail``)."""
        return self.data_dir / "mail"

    @property
    def push_dir(self) -> Path:
        """Where the push sink stores received requests (``<data_dir>/push``)."""
        return self.data_dir / "push"

    @property
    def logs_dir(self) -> Path:
        """Where each engine's log file is (``<data_dir>/logs/<engine>.log``)."""
        return self.data_dir / "logs"

    @property
    def env(self) -> dict[str, str]:
        """The TRIBE_* variables of the running stack (empty before ``start``)."""
        return dict(self._env)

    @property
    def ports(self) -> dict[str, int]:
        """The ports of the engines this stack started, by name."""
        return {name: port for engine in self._engines for name, port in engine.ports.items()}

    def start(self) -> dict[str, str]:
        """Start every engine not given in ``external``, wait until all answer, return the TRIBE_* variables."""
        with self._state_lock:
            if self._started:
                raise EngineError("this stack is already started")
            began = time.monotonic()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(exist_ok=True)
            self._lock.acquire()
            try:
                self._start_locked()
            except BaseException:
                self._cancel.set()
                self._shutdown()
                raise
            self._started = True
            atexit.register(self.stop)
            started = [e.name for e in self._engines]
            self._status(f"engines ready in {time.monotonic() - began:.1f} s ({', '.join(started) or 'none started'})")
            return dict(self._env)

    def stop(self) -> None:
        """Stop every engine this stack started (Postgres with a fast shutdown) within 10 s; idempotent."""
        with self._state_lock:
            if not self._started:
                return
            began = time.monotonic()
            self._shutdown()
            self._started = False
            atexit.unregister(self.stop)
            self._status(f"engines stopped in {time.monotonic() - began:.1f} s")

    def __enter__(self) -> EmbeddedStack:
        """Start the stack."""
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the stack."""
        self.stop()

    # --- start-up ------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        self._cancel.clear()
        leftovers = stop_recorded(self._pids, STOP_BUDGET)
        if leftovers:
            self._status(f"stopped engines left running by an earlier owner: {', '.join(leftovers)}")
        to_start: list[type[Engine]] = []
        for cls in ENGINES:
            given = self.external.get(cls.env_var)
            if given:
                for var in (cls.env_var, *cls.extra_env_vars):
                    if self.external.get(var):
                        self._env[var] = self.external[var]
                self._status(f"{cls.name}: using {cls.env_var} (not started)")
            else:
                to_start.append(cls)
        if not to_start:
            return
        for cls in to_start:
            # Before choosing ports, so a leftover server's port is free again and the URL stays the same.
            if cls.stop_leftovers(self.data_dir):
                self._status(f"{cls.name}: stopped a server left running by an earlier owner")
        ports = self._allocate_ports(to_start)
        ctx = EngineContext(
            data_dir=self.data_dir,
            logs_dir=self.logs_dir,
            startup_timeout=self.startup_timeout,
            cancel=self._cancel,
            on_spawn=self._pids.add,
            external=self.external,
        )
        self._engines = [cls(ctx, {n: ports[n] for n in cls.port_names}) for cls in to_start]
        self._start_reaper()
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=len(self._engines), thread_name_prefix="engine") as pool:
            futures: list[Future[float]] = [pool.submit(self._start_engine, e) for e in self._engines]
            for future in futures:
                try:
                    future.result()
                except BaseException as exc:  # collected and re-raised below
                    # One failure (or Ctrl-C) cancels the others' waits, so the error surfaces fast.
                    self._cancel.set()
                    if not isinstance(exc, StartCancelled):
                        errors.append(exc)
        if errors:
            first = errors[0]
            if len(errors) > 1 and all(isinstance(e, EngineError) for e in errors):
                raise EngineError("\n\n".join(str(e) for e in errors))
            raise first
        self._save_ports()

    def _start_engine(self, engine: Engine) -> float:
        began = time.monotonic()
        for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
            try:
                engine.start()
                break
            except StartCancelled:
                raise
            except EngineError:
                # A free port we picked can be taken before the engine binds it (another stack
                # starting, a client's ephemeral port): pick new ones and try again.
                if attempt == PORT_RACE_ATTEMPTS or self._cancel.is_set() or not lost_port_race(engine.log_path):
                    raise
                stop_targets(engine.stop_targets(), STOP_BUDGET)
                engine.processes.clear()
                engine.ports = {name: self._fresh_port() for name in engine.port_names}
                self._status(f"{engine.name}: a port was taken meanwhile; retrying on new ports")
        elapsed = time.monotonic() - began
        self._env.update(engine.env())
        self._status(f"{engine.name} ready on {engine.address} ({elapsed:.1f} s)")
        return elapsed

    def _fresh_port(self) -> int:
        with self._ports_lock:
            port = free_port(avoid=frozenset(self._taken_ports))
            self._taken_ports.add(port)
            return port

    def _allocate_ports(self, engines: list[type[Engine]]) -> dict[str, int]:
        """Fixed ports as given; else last run's port if still free; else a fresh free one."""
        remembered = self._load_ports()
        chosen: dict[str, int] = {}
        for cls in engines:
            for name in cls.port_names:
                if name in self._fixed_ports:
                    port = self._fixed_ports[name]
                    if not port_is_free(port):
                        raise EngineError(f"{cls.name}: port {port} ({name}) is already in use")
                else:
                    previous = remembered.get(name)
                    reusable = previous not in chosen.values() and previous not in self._reserved
                    if previous is not None and reusable and port_is_free(previous):
                        port = previous
                    else:
                        avoid = frozenset(chosen.values()) | frozenset(remembered.values()) | self._reserved
                        port = free_port(avoid=avoid)
                chosen[name] = port
        self._taken_ports = set(chosen.values()) | set(remembered.values()) | set(self._reserved)
        return chosen

    def _load_ports(self) -> dict[str, int]:
        try:
            raw = json.loads((self.data_dir / PORTS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, int)} if isinstance(raw, dict) else {}
        )

    def _save_ports(self) -> None:
        # Merged with what is there, so a run with some engines external keeps the others' ports.
        ports = {**self._load_ports(), **self.ports}
        tmp = self.data_dir / f".{PORTS_FILE}.tmp"
        tmp.write_text(json.dumps(ports, indent=1, sort_keys=True))
        tmp.replace(self.data_dir / PORTS_FILE)

    def _start_reaper(self) -> None:
        log = (self.logs_dir / "reaper.log").open("ab")
        with log:
            self._reaper = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                python_module_argv("shared.dev.reaper", str(self.data_dir)),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=python_child_env(),
                cwd=self.data_dir,
                start_new_session=True,
            )

    # --- shutdown ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Stop all engine processes in parallel, then the reaper, then let go of the data directory."""
        targets: list[StopTarget] = [t for engine in self._engines for t in engine.stop_targets()]
        survivors = stop_targets(targets, STOP_BUDGET) if targets else []
        for engine in self._engines:
            with contextlib.suppress(OSError):
                engine.after_stop()
        if survivors:
            self._status(f"could not stop: {', '.join(survivors)}")
        else:
            self._pids.clear()
        self._stop_reaper()
        self._engines = []
        self._env = {}
        self._lock.release()

    def _stop_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is None:
            return
        if reaper.stdin is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.write(STOPPED_CLEANLY)
                reaper.stdin.flush()
            with contextlib.suppress(OSError):
                reaper.stdin.close()
        try:
            reaper.wait(2.0)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()

    def _status(self, message: str) -> None:
        if self._on_status is not None:
            with self._status_lock:
                self._on_status(message)
