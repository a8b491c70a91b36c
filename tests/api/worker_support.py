"""Run worker code from a test, in this process: start-up crons under a frozen clock, or one outbox row's job."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import time_machine
from arq.connections import RedisSettings, create_pool
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import OutboxRow
from shared.config import load_settings
from workers.context import NO_RELAY_KEY, SETTINGS_KEY
from workers.jobs.notifications import NOTIFY_FROM_EVENT
from workers.serialization import job_deserializer, job_serializer
from workers.settings import create_worker, shutdown, startup


async def run_startup_crons(engine_env: dict[str, str], at: datetime) -> None:
    """Start-up crons (reminders, ticket sweep, boost refresh ...) run once at ``at``, on a queue of their own.

    No outbox relay (it would pull other tests' events into this queue), and the burst stops once each
    start-up cron has started: a job retried with a delay never comes due under a frozen clock.
    """
    with time_machine.travel(at, tick=False):
        worker = create_worker(
            load_settings(engine_env),
            burst=True,
            handle_signals=False,
            queue_name=f"tribe-test:{uuid.uuid4().hex}",
            ctx={NO_RELAY_KEY: True},
        )
        worker.max_burst_jobs = sum(1 for job in worker.cron_jobs if job.run_at_startup)
        try:
            await worker.async_run()
        finally:
            await worker.close()


async def run_notice_jobs(
    engine_env: dict[str, str], db: async_sessionmaker[AsyncSession], event_type: str, **match: str
) -> int:
    """Run ``notify_from_event`` for every outbox row of ``event_type`` whose payload fields equal ``match``.

    The job runs here and now, with the resources a worker starts with, instead of whenever a busy worker
    process gets to it. Its cause is the row id, as when the relay queues it, so a worker process that
    runs the same job too stores nothing twice. Returns how many rows were handled.
    """
    query = select(OutboxRow.id, OutboxRow.payload).where(OutboxRow.event_type == event_type)
    for key, value in match.items():
        query = query.where(OutboxRow.payload[key].astext == value)
    async with db() as session:
        rows = (await session.execute(query.order_by(OutboxRow.id))).all()
    settings = load_settings(engine_env)
    # A queue of its own, so nothing this job might queue is run by (or mixed into) another worker's queue.
    redis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=f"tribe-test:{uuid.uuid4().hex}",
    )
    ctx: dict[Any, Any] = {SETTINGS_KEY: settings, NO_RELAY_KEY: True, "redis": redis}
    try:
        await startup(ctx)
        for row in rows:
            # The payload as arq hands it over; execute() decodes and validates it like any job's.
            notice = {"event": row.payload, "cause": str(row.id)}
            job = {**ctx, "job_id": NOTIFY_FROM_EVENT.job_id(row.id), "job_try": 1}
            await NOTIFY_FROM_EVENT.execute(job, notice)
    finally:
        await shutdown(ctx)
        await redis.delete(redis.default_queue_name)
        await redis.aclose()
    return len(rows)
