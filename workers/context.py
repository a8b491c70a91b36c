"""What jobs and the relay share inside one worker process, kept in arq's ``ctx``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.config import Settings
from shared.domain.notifications.delivery import Senders
from shared.mail import Mailer
from shared.storage import Storage

# arq's ctx is a plain dict; these are the only keys this package puts in it.
RESOURCES_KEY = "tribe_resources"
SETTINGS_KEY = "tribe_settings"
EXIT_STACK_KEY = "tribe_exit_stack"
# Set (to True) in a worker's ctx to run it without the outbox relay: a burst worker that only runs its
# start-up crons under a frozen clock must not pull in other jobs, whose retries would never come due.
NO_RELAY_KEY = "tribe_no_relay"

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerResources:
    """Connections and clients built at start-up and closed at shutdown."""

    settings: Settings
    redis: ArqRedis
    sessions: async_sessionmaker[AsyncSession]
    nats: NatsClient
    mailer: Mailer
    storage: Storage
    worker_name: str
    senders: Senders
    clock: Clock = utcnow


def resources_of(ctx: Mapping[Any, Any]) -> WorkerResources:
    """The resources ``on_startup`` stored in arq's ``ctx``."""
    value = ctx.get(RESOURCES_KEY)
    if not isinstance(value, WorkerResources):
        raise RuntimeError("worker resources are missing from ctx; did on_startup run?")
    return value


@dataclass(frozen=True, slots=True)
class JobContext:
    """What one job run sees: the shared resources and its own id and attempt number."""

    resources: WorkerResources
    job_id: str
    job_try: int

    @classmethod
    def from_arq(cls, ctx: Mapping[Any, Any]) -> JobContext:
        """The typed view of the ``ctx`` arq passes to a job."""
        return cls(resources=resources_of(ctx), job_id=str(ctx["job_id"]), job_try=int(ctx["job_try"]))
