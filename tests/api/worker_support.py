"""Run a worker's start-up crons once, as a burst worker with the clock frozen at a given instant."""

from __future__ import annotations

import uuid
from datetime import datetime

import time_machine

from shared.config import load_settings
from workers.context import NO_RELAY_KEY
from workers.settings import create_worker


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
