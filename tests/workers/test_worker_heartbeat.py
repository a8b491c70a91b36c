"""The heartbeat cron job writes an observable key with a TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis

from shared.config import Settings
from workers.context import SETTINGS_KEY
from workers.jobs.system import HEARTBEAT_KEY, HEARTBEAT_TTL_S, heartbeat, read_heartbeat, record_heartbeat
from workers.settings import cron_jobs, shutdown, startup, worker_name


async def test_heartbeat_cron_job_records_this_worker(settings: Settings, arq_redis: ArqRedis) -> None:
    ctx: dict[Any, Any] = {"redis": arq_redis, SETTINGS_KEY: settings}
    await startup(ctx)
    try:
        before = datetime.now(UTC)
        await heartbeat(ctx)
    finally:
        await shutdown(ctx)

    beat = await read_heartbeat(arq_redis)
    assert beat is not None
    assert beat.worker == worker_name()
    assert before <= beat.at <= datetime.now(UTC)
    assert 0 < await arq_redis.ttl(HEARTBEAT_KEY) <= HEARTBEAT_TTL_S


async def test_record_heartbeat_takes_the_clock(arq_redis: ArqRedis) -> None:
    at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

    await record_heartbeat(arq_redis, worker="host:1", now=at)

    beat = await read_heartbeat(arq_redis)
    assert beat is not None
    assert (beat.worker, beat.at) == ("host:1", at)


def test_heartbeat_runs_every_minute_and_at_start_up() -> None:
    [job] = [j for j in cron_jobs() if j.name == "heartbeat"]
    assert job.run_at_startup
    start = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    job.calculate_next(start)
    assert job.next_run is not None
    first = job.next_run
    job.calculate_next(first)
    assert job.next_run - first == timedelta(minutes=1)
