"""Child-process plumbing shared by the embedded engines: ports, log files, readiness waits and stopping."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

# How many lines of an engine's log an error message quotes.
LOG_TAIL_LINES = 25
# Each start appends to the engine's log; past this size the old log moves to "<name>.log.1".
LOG_ROTATE_BYTES = 10 * 1024 * 1024
# Written before each start, so readers can tell this run's lines from earlier ones.
RUN_MARKER = "\n===== "


class EngineError(RuntimeError):
    """An engine failed to start or stop; the message names the engine and its log file."""


class StartCancelled(EngineError):
    """An engine's start was abandoned because another engine failed (or the owner was interrupted)."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or an empty string if there is none."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16_384))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def current_run_log(path: Path) -> str:
    """The end of a log file from the latest start marker on (at most the last 16 KiB)."""
    return log_tail(path, lines=400).rsplit(RUN_MARKER.strip("\n"), 1)[-1]


def lost_port_race(path: Path) -> bool:
    """Whether the latest run in this log failed because its port was taken after we chose it."""
    # Every engine says it this way: Redis, Postgres, Go's net package and Python's OSError.
    return "address already in use" in current_run_log(path).lower()


# --- ports -------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like the servers themselves, so a port held only by TIME_WAIT sockets of the
        # previous run still counts as free and a restart keeps its URLs.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST, avoid: frozenset[int] = frozenset()) -> int:
    """A port nothing listens on now (the kernel's choice), not one of ``avoid``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise EngineError("could not find a free TCP port")


# --- process identity --------------------------------------------------------------------------


def process_identity(pid: int) -> str | None:
    """A token that identifies process ``pid`` across pid reuse (its start time), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # Linux: the process is gone
        return _ps_field(pid, "lstart")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # a zombie is as good as gone
    return f"linux:{fields[19]}"  # field 22: start time in clock ticks since boot


def process_cmdline(pid: int) -> str | None:
    """The command line of process ``pid`` as one string, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self/cmdline").exists():
            return None
        return _ps_field(pid, "command")
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or None


def _ps_field(pid: int, column: str) -> str | None:
    # Fallback for systems without /proc (macOS).
    try:
        # ps lives in /bin or /usr/bin depending on the system, hence no absolute path.
        out = subprocess.run(  # noqa: S603
            ["ps", "-o", f"{column}=", "-p", str(pid)],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    return f"ps:{value}" if column == "lstart" and value else (value or None)


def _signal_pid(pid: int, sig: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


# --- stopping ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopPolicy:
    """How to stop one engine process: signals to send and when, then SIGKILL to its process group."""

    first: int = signal.SIGTERM
    # (seconds after the first signal, signal) sent to the leader before the final SIGKILL.
    then: tuple[tuple[float, int], ...] = ()
    kill_after: float = 6.0

    def to_json(self) -> dict[str, object]:
        """A JSON-able form, for the pid file."""
        return {"first": int(self.first), "then": [[t, int(s)] for t, s in self.then], "kill_after": self.kill_after}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> StopPolicy:
        """Rebuild a policy written by ``to_json``."""
        then_raw = raw.get("then", [])
        then = tuple((float(t), int(s)) for t, s in then_raw) if isinstance(then_raw, list) else ()
        first = raw.get("first", signal.SIGTERM)
        kill_after = raw.get("kill_after", 6.0)
        return cls(
            first=int(first) if isinstance(first, int) else signal.SIGTERM,
            then=then,
            kill_after=float(kill_after) if isinstance(kill_after, (int, float)) else 6.0,
        )


@dataclass
class StopTarget:
    """A process being stopped; either our own child (``popen``) or one recorded by an earlier owner."""

    name: str
    pid: int
    policy: StopPolicy
    identity: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    _sent: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        """Whether the process still runs (reaping it if it is our child)."""
        if self.popen is not None:
            return self.popen.poll() is None
        current = process_identity(self.pid)
        return current is not None and (self.identity is None or current == self.identity)

    def advance(self, elapsed: float, final: bool) -> None:
        """Send whichever signals of the policy are due ``elapsed`` seconds into the stop."""
        steps: list[tuple[float, int]] = [(0.0, self.policy.first), *self.policy.then]
        for at, sig in steps:
            if elapsed >= at and sig not in self._sent:
                self._sent.add(sig)
                _signal_pid(self.pid, sig)
        if (final or elapsed >= self.policy.kill_after) and signal.SIGKILL not in self._sent:
            self._sent.add(signal.SIGKILL)
            # The whole group: every engine runs as the leader of its own session, and SIGKILL on the
            # leader alone could leave workers behind. The leader is alive here, so the group id is ours.
            _signal_pid(self.pid, signal.SIGKILL, group=True)
            _signal_pid(self.pid, signal.SIGKILL)


def stop_targets(targets: Sequence[StopTarget], budget: float) -> list[str]:
    """Stop all ``targets`` concurrently within ``budget`` seconds; return the names that survived."""
    start = time.monotonic()
    pending = [t for t in targets if t.alive()]
    while pending:
        elapsed = time.monotonic() - start
        final = elapsed >= budget - 0.5
        for target in pending:
            target.advance(elapsed, final)
        time.sleep(0.02)
        pending = [t for t in pending if t.alive()]
        if time.monotonic() - start > budget:
            break
    for target in pending:
        if target.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                target.popen.wait(0.5)
    return [t.name for t in pending if t.alive()]


# --- the record of running processes -----------------------------------------------------------


class PidFile:
    """``<data_dir>/pids.json``: every engine process started, so a later owner or the reaper can stop it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, target: StopTarget) -> None:
        """Record a started process."""
        with self._lock:
            entries = self._read()
            entries.append(
                {
                    "name": target.name,
                    "pid": target.pid,
                    "identity": target.identity,
                    "policy": target.policy.to_json(),
                }
            )
            self._write(entries)

    def targets(self) -> list[StopTarget]:
        """The recorded processes that still run (same pid and start time)."""
        with self._lock:
            entries = self._read()
        found: list[StopTarget] = []
        for entry in entries:
            pid, identity, name, policy = (
                entry.get("pid"),
                entry.get("identity"),
                entry.get("name"),
                entry.get("policy"),
            )
            if not isinstance(pid, int) or not isinstance(identity, str) or not isinstance(name, str):
                continue
            target = StopTarget(
                name=name,
                pid=pid,
                identity=identity,
                policy=StopPolicy.from_json(policy if isinstance(policy, dict) else {}),
            )
            if target.alive():
                found.append(target)
        return found

    def clear(self) -> None:
        """Forget every record (all of them were stopped)."""
        with self._lock:
            self.path.unlink(missing_ok=True)

    def _read(self) -> list[dict[str, object]]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []

    def _write(self, entries: list[dict[str, object]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(self.path)


def stop_recorded(pid_file: PidFile, budget: float) -> list[str]:
    """Stop every still-running process in ``pid_file`` (left by an owner that died); return their names."""
    targets = pid_file.targets()
    if targets:
        stop_targets(targets, budget)
    pid_file.clear()
    return [t.name for t in targets]


# --- a managed child process -------------------------------------------------------------------


class ManagedProcess:
    """One engine process: started in its own session with output to a log file, stopped by policy."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        policy: StopPolicy | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.user = user
        self.policy = policy or StopPolicy()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> StopTarget:
        """Start the process; return its stop target for the pid file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{RUN_MARKER}{stamp} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.popen = subprocess.Popen(  # noqa: S603 - engine binaries we located, fixed arguments
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    # Own session: the terminal's Ctrl-C reaches only the owner, which decides the stop order.
                    start_new_session=True,
                    user=self.user,
                    group=None if self.user is None else pwd.getpwnam(self.user).pw_gid,
                    extra_groups=None if self.user is None else [],
                )
            except OSError as exc:
                raise EngineError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        return self.target()

    def target(self) -> StopTarget:
        """This process as a stop target."""
        return StopTarget(
            name=self.name, pid=self.pid, policy=self.policy, identity=process_identity(self.pid), popen=self.popen
        )

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def failure(self, message: str) -> EngineError:
        """An error naming this engine and its log, quoting the end of the log."""
        tail = log_tail(self.log_path)
        quoted = f"\n--- last lines of {self.log_path} ---\n{tail}" if tail else ""
        return EngineError(f"{self.name}: {message} (log: {self.log_path}){quoted}")

    def wait_until(self, probe: Callable[[], bool], *, timeout: float, cancel: threading.Event, what: str) -> None:
        """Poll ``probe`` until it is true; fail if the process exits, ``timeout`` passes or start is cancelled."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if cancel.is_set():
                raise StartCancelled(f"{self.name}: start cancelled")
            if self.popen is not None and self.popen.poll() is not None:
                raise self.failure(f"exited with code {self.popen.returncode} before {what}")
            if probe():
                return
            if time.monotonic() > deadline:
                raise self.failure(f"not {what} after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


# --- probes ------------------------------------------------------------------------------------


def tcp_exchange(port: int, send: bytes | None, expect: bytes, *, timeout: float = 1.0) -> bool:
    """Connect to ``127.0.0.1:port``, optionally send bytes, and check the reply starts with ``expect``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            if send:
                sock.sendall(send)
            data = b""
            while len(data) < len(expect):
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(expect)
    except OSError:
        return False


def http_status(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET to ``url``, or None if nothing answered."""
    import urllib.error
    import urllib.request

    if not url.startswith("http://"):
        raise ValueError(f"not a local http URL: {url}")
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def python_module_argv(module: str, *args: str) -> list[str]:
    """The command line to run ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def python_child_env() -> dict[str, str]:
    """The environment for our Python children, with this project importable whatever their cwd."""
    env = dict(os.environ)
    project_root = str(Path(__file__).resolve().parents[2])
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = project_root if not existing else f"{project_root}{os.pathsep}{existing}"
    return env


def is_root() -> bool:
    """Whether we run as root (some engines refuse to, or need a system user then)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def package_dir(package: str) -> Path | None:
    """The directory of an installed package, found without importing it (some do work at import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_binary(name: str, *, package: str | None = None, subdir: str = "bin") -> Path:
    """An engine binary: inside ``package`` if given, else next to this interpreter, else on PATH."""
    candidates: list[Path] = []
    if package is not None and (pkg := package_dir(package)) is not None:
        candidates.append(pkg / subdir / name)
    candidates.append(Path(sysconfig.get_path("scripts")) / name)
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    if on_path is not None:
        return Path(on_path)
    where = f"the {package} package, " if package else ""
    raise EngineError(f"{name} not found in {where}{candidates[-1].parent} or PATH; run `uv sync` (engines group)")
