"""The worker's composition root: arq settings, start-up and shutdown of its resources."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from contextlib import AsyncExitStack
from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Worker
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shared.config import Settings, env_name, get_settings
from shared.db.session import create_engine, create_session_factory
from shared.domain.media.lifecycle import apply_media_lifecycle
from shared.domain.notifications.delivery import ExpoPushProvider, Senders
from shared.domain.notifications.services import UnsubscribeTokens
from shared.errors import Unavailable
from shared.mail import Mailer
from shared.storage import Storage
from workers.context import EXIT_STACK_KEY, NO_RELAY_KEY, RESOURCES_KEY, SETTINGS_KEY, WorkerResources
from workers.jobs.base import JobSpec
from workers.jobs.discovery import REFRESH_RECOMMENDATIONS, flush_pending_refreshes, refresh_active_users
from workers.jobs.events import send_event_reminders
from workers.jobs.gamification import ON_ACTIVITY, ON_STREAK_ACTIVITY, leaderboard_snapshots, streak_reminders
from workers.jobs.mail import SEND_EMAIL
from workers.jobs.media import PROCESS_MEDIA, PURGE_MEDIA, sweep_abandoned_uploads
from workers.jobs.notifications import DELIVER_NOTIFICATION, DISPATCH_NOTIFICATION, NOTIFY_FROM_EVENT, send_digests
from workers.jobs.payments import refresh_boosts
from workers.jobs.system import heartbeat
from workers.jobs.tickets import REFUND_EVENT_TICKETS, sweep_tickets
from workers.outbox import OutboxRelay, listen_dsn
from workers.serialization import job_deserializer, job_serializer

log = structlog.stdlib.get_logger(__name__)

JOBS: tuple[JobSpec[Any], ...] = (
    SEND_EMAIL,
    DISPATCH_NOTIFICATION,
    DELIVER_NOTIFICATION,
    NOTIFY_FROM_EVENT,
    ON_STREAK_ACTIVITY,
    ON_ACTIVITY,
    PROCESS_MEDIA,
    PURGE_MEDIA,
    REFRESH_RECOMMENDATIONS,
    REFUND_EVENT_TICKETS,
)
"""Every job this worker registers with arq; a job queued but not listed here fails as unknown."""

POLL_DELAY_S = 0.05
"""How often arq looks at the queue: a queued job starts within this (plus its own run time)."""

REDIS_CONNECT_TIMEOUT_S = 5
"""How long a new Redis connection may take before arq gives up on it (its default is 1 s)."""

KEEP_RESULT_S = 3600
"""How long a finished job's result (and so its id, which blocks a second job for the same cause) is kept."""

NATS_CONNECT_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 5


def worker_name() -> str:
    """This process as other workers and the heartbeat see it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def cron_jobs() -> list[CronJob]:
    """Fresh cron entries (arq keeps each one's next run time on the object, so one per worker)."""
    return [
        cron(heartbeat, name="heartbeat", second=0, run_at_startup=True, timeout=10),
        # Every 15 minutes so each time zone's evening window is hit; the dedupe key keeps it to one a day.
        cron(streak_reminders, name="streak_reminders", minute={0, 15, 30, 45}, second=10, timeout=120),
        cron(send_digests, name="send_digests", minute=2, second=0, timeout=300),
        cron(leaderboard_snapshots, name="leaderboard_snapshots", minute=5, second=0, timeout=300),
        # Hourly, so an abandoned upload outlives its 24 h by at most an hour.
        cron(sweep_abandoned_uploads, name="sweep_abandoned_uploads", minute=17, second=30, timeout=300),
        # Every minute; exactly-once rests on event_reminders_sent, not on the schedule.
        cron(send_event_reminders, name="event_reminders", second=30, run_at_startup=True, timeout=120),
        # Every minute; reads derive the live status themselves, so this only keeps the column honest.
        cron(refresh_boosts, name="refresh_boosts", second=40, run_at_startup=True, timeout=60),
        # Hourly; it only queues per-user refresh jobs (each bounded by its own timeout).
        cron(refresh_active_users, name="refresh_recommendations", minute=23, second=0, timeout=300),
        # Every 15 s: debounced signal refreshes whose window has ended are queued.
        cron(flush_pending_refreshes, name="flush_recommendation_refreshes", second={5, 20, 35, 50}, timeout=60),
        # Every 15 s, so a lapsed seat hold or waitlist offer is back on sale (or passed on) quickly.
        cron(sweep_tickets, name="sweep_tickets", second={5, 20, 35, 50}, run_at_startup=True, timeout=120),
    ]


def redis_settings(url: str) -> RedisSettings:
    """arq's Redis settings, more patient than its defaults (1 s to connect, no retry on a timeout).

    A Redis connect that stalls for a second (a slow AOF fsync on a busy disk) would otherwise end the
    worker's main loop from inside a cron enqueue.
    """
    return dataclasses.replace(RedisSettings.from_dsn(url), conn_timeout=REDIS_CONNECT_TIMEOUT_S, retry_on_timeout=True)


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The arq ``WorkerSettings`` for ``settings``, built at run time so nothing is read at import."""
    return {
        "functions": [job.arq_function() for job in JOBS],
        "cron_jobs": cron_jobs(),
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "job_serializer": job_serializer,
        "job_deserializer": job_deserializer,
        "poll_delay": POLL_DELAY_S,
        # Jobs wait on SMTP, HTTP and the database rather than the CPU, so a process can run many at once.
        "max_jobs": 20,
        "keep_result": KEEP_RESULT_S,
        # On SIGTERM stop taking jobs and let running ones finish for this long before cancelling them.
        "job_completion_wait": SHUTDOWN_GRACE_S,
        # ctx carries the settings so start-up uses the same ones the Redis connection came from.
        "ctx": {SETTINGS_KEY: settings},
    }


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq ``Worker`` for ``settings``; ``overrides`` are ``Worker`` keyword arguments (``burst=True`` ...)."""
    options = worker_settings(settings)
    if "ctx" in overrides:
        overrides["ctx"] = {**options["ctx"], **overrides["ctx"]}
    return Worker(**{**options, **overrides})


async def startup(ctx: dict[Any, Any]) -> None:
    """arq ``on_startup``: connect to Postgres and NATS, build the mailer, start the outbox relay."""
    settings = ctx.get(SETTINGS_KEY)
    if not isinstance(settings, Settings):
        settings = get_settings()
    name = worker_name()
    stack = AsyncExitStack()
    ctx[EXIT_STACK_KEY] = stack
    try:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        try:
            async with engine.connect() as connection:
                # Fail start-up now rather than on the first job if the database is unreachable.
                await connection.execute(text("SELECT 1"))
        except (OSError, SQLAlchemyError) as exc:
            raise Unavailable(f"cannot reach Postgres ({env_name('database_url')}): {exc}") from exc

        nats = await connect_nats(settings.nats_url, name=f"tribe-worker {name}")
        stack.push_async_callback(close_nats, nats)

        mailer = Mailer.from_settings(settings)
        push = (
            ExpoPushProvider(settings.push_url, access_token=settings.push_access_token) if settings.push_url else None
        )
        if push is not None:
            stack.push_async_callback(push.aclose)
        storage = Storage(settings)
        await apply_media_lifecycle(storage)
        resources = WorkerResources(
            settings=settings,
            redis=ctx["redis"],
            sessions=create_session_factory(engine),
            nats=nats,
            mailer=mailer,
            storage=storage,
            worker_name=name,
            senders=Senders(
                mailer=mailer,
                push=push,
                unsubscribe=UnsubscribeTokens(settings.jwt_secret),
                public_api_url=settings.public_api_url,
            ),
        )
        if not ctx.get(NO_RELAY_KEY):
            relay = OutboxRelay(
                sessions=resources.sessions,
                redis=resources.redis,
                nats=nats,
                listen_dsn=listen_dsn(settings.database_url),
            )
            relay.start()
            stack.push_async_callback(relay.stop)
        ctx[RESOURCES_KEY] = resources
    except BaseException:
        # arq calls on_shutdown even after a failed start-up; leave it nothing half-built.
        ctx.pop(EXIT_STACK_KEY, None)
        await stack.aclose()
        raise
    log.info("worker.started", worker=name)


async def shutdown(ctx: dict[Any, Any]) -> None:
    """arq ``on_shutdown``: stop the relay, drain NATS, dispose of the engine (reverse start-up order)."""
    ctx.pop(RESOURCES_KEY, None)
    stack: AsyncExitStack | None = ctx.pop(EXIT_STACK_KEY, None)
    if stack is not None:
        await stack.aclose()
        log.info("worker.stopped", worker=worker_name())


async def connect_nats(url: str, *, name: str) -> NatsClient:
    """A NATS client that reconnects forever once connected; ``Unavailable`` if the first connect does not succeed."""

    client = NatsClient()

    async def on_error(exc: Exception) -> None:
        log.warning("nats.error", error=str(exc))

    async def on_disconnected() -> None:
        # Our own drain at shutdown also disconnects; only an unplanned loss is worth a warning.
        if not (client.is_closed or client.is_draining):
            log.warning("nats.disconnected")

    async def on_reconnected() -> None:
        log.info("nats.reconnected")

    try:
        await asyncio.wait_for(
            client.connect(
                url,
                name=name,
                connect_timeout=2,
                reconnect_time_wait=1,
                max_reconnect_attempts=-1,
                drain_timeout=SHUTDOWN_GRACE_S,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            ),
            timeout=NATS_CONNECT_TIMEOUT_S,
        )
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await client.close()
        if isinstance(exc, (TimeoutError, OSError, NatsError)):
            detail = f"cannot reach NATS ({env_name('nats_url')}) within {NATS_CONNECT_TIMEOUT_S:g} s: {exc!r}"
            raise Unavailable(detail) from exc
        raise
    return client


async def close_nats(client: NatsClient) -> None:
    """Flush what was published and close ``client``."""
    if client.is_closed:
        return
    try:
        await client.drain()
    except Exception:
        await client.close()
