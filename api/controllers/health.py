"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import text

from api.deps import provide_runtime

CHECK_TIMEOUT_SECONDS = 2


class HealthStatus(msgspec.Struct):
    """Overall status and each dependency's."""

    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    """``/health/live`` says the process runs; ``/health/ready`` that it can serve."""

    path = "/health"
    tags = ["health"]

    @get("/live", exclude_from_auth=True)
    async def live(self) -> HealthStatus:
        """Always ok while the process runs."""
        return HealthStatus(status="ok")

    @get("/ready", exclude_from_auth=True)
    async def ready(self, state: State) -> Response[HealthStatus]:
        """Postgres, Redis and NATS all answer; 503 otherwise or while shutting down."""
        runtime = provide_runtime(state)

        async def postgres() -> None:
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def redis() -> None:
            await runtime.redis.ping()

        async def nats() -> None:
            if not runtime.nats.is_connected:
                raise ConnectionError("not connected")
            await runtime.nats.flush(timeout=CHECK_TIMEOUT_SECONDS)

        checks: dict[str, str] = {}
        for name, probe in (("postgres", postgres), ("redis", redis), ("nats", nats)):
            try:
                await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
                checks[name] = "ok"
            except Exception as exc:  # any failure means not ready; the reason is reported
                checks[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values()) and not runtime.draining
        body = HealthStatus(status="ok" if ok else "unavailable", checks=checks)
        return Response(body, status_code=200 if ok else 503)
