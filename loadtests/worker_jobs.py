"""Benchmark: enqueue -> start latency and jobs per second of the Tribe worker, against baselines.

Three queues are measured in this one run, with the same no-op job and the same driver:

- ``tribe worker``: ``workers.settings.create_worker`` (msgspec codec, typed ``JobSpec``, its
  ``poll_delay`` and ``max_jobs``), started with its real resources (Postgres, NATS, outbox relay);
- ``bare arq``: an arq ``Worker`` with arq's defaults (pickle codec, ``poll_delay`` 0.5 s);
- ``asyncio.Queue``: an in-process queue, the floor with no Redis round trip at all.

Latency is measured with jobs enqueued one at a time at a steady pace (``--rate`` per second);
throughput with ``--burst`` jobs enqueued at once, timed until the last one ran. Target (GUIDE §7):
enqueue -> start p99 <= 100 ms.

    uv run python -m loadtests.worker_jobs [--jobs 300] [--rate 50] [--burst 2000]

Engines are started embedded in a temporary folder unless ``TRIBE_*`` URLs are set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func
from rich.console import Console
from rich.table import Table

from shared.config import load_settings
from shared.db.migrate import upgrade
from shared.dev.stack import EmbeddedStack
from workers.context import JobContext
from workers.jobs.base import JobSpec
from workers.serialization import job_deserializer, job_serializer
from workers.settings import JOBS, create_worker

console = Console()


class Probe(msgspec.Struct, frozen=True):
    """The benchmark job's payload: when it was enqueued (wall clock, seconds)."""

    enqueued_at: float


@dataclass
class Recorder:
    """Start latencies of one run, and a signal when the expected number of jobs started."""

    expected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, expected: int) -> None:
        """Start a new run expecting ``expected`` jobs."""
        self.expected = expected
        self.latencies_ms = []
        self.done = asyncio.Event()

    def started(self, enqueued_at: float) -> None:
        """One job started now."""
        self.latencies_ms.append((time.time() - enqueued_at) * 1000)
        if len(self.latencies_ms) >= self.expected:
            self.done.set()


@dataclass
class Result:
    """What one queue achieved."""

    name: str
    latencies_ms: list[float]
    jobs_per_s: float

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile start latency in ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


Enqueue = Callable[[float], Awaitable[None]]


async def drive(name: str, recorder: Recorder, enqueue: Enqueue, *, jobs: int, rate: float, burst: int) -> Result:
    """A paced latency run, then a burst throughput run, through ``enqueue``."""
    recorder.reset(jobs)
    interval = 1 / rate
    began = time.perf_counter()
    for n in range(jobs):
        # Paced against the schedule, not the previous send, so slow enqueues do not lower the rate.
        delay = began + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await enqueue(time.time())
    await asyncio.wait_for(recorder.done.wait(), timeout=120)
    latencies = list(recorder.latencies_ms)

    recorder.reset(burst)
    began = time.perf_counter()
    await asyncio.gather(*(enqueue(time.time()) for _ in range(burst)))
    await asyncio.wait_for(recorder.done.wait(), timeout=300)
    return Result(name, latencies, burst / (time.perf_counter() - began))


async def run_tribe(settings_env: dict[str, str], options: argparse.Namespace) -> Result:
    """The Tribe worker with a no-op ``JobSpec`` added to its jobs."""
    settings = load_settings(settings_env)
    recorder = Recorder()

    async def noop(_ctx: JobContext, probe: Probe) -> None:
        recorder.started(probe.enqueued_at)

    spec = JobSpec(name="bench_noop", payload_type=Probe, run=noop)
    queue = f"bench:tribe:{uuid.uuid4().hex}"
    worker = create_worker(
        settings,
        handle_signals=False,
        queue_name=queue,
        functions=[job.arq_function() for job in (*JOBS, spec)],
        cron_jobs=[],
    )
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=queue,
    )
    task = asyncio.create_task(worker.async_run())
    try:

        async def enqueue(at: float) -> None:
            await spec.enqueue(pool, Probe(enqueued_at=at), cause=uuid.uuid4().hex)

        return await drive("tribe worker", recorder, enqueue, jobs=options.jobs, rate=options.rate, burst=options.burst)
    finally:
        # Jobs still finishing when the last one started are cancelled by close(); that is expected here.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.delete(queue)
        await pool.aclose()


async def run_bare_arq(redis_url: str, options: argparse.Namespace) -> Result:
    """A bare arq worker with arq's defaults and a no-op function."""
    recorder = Recorder()

    async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        recorder.started(float(args[0]))

    queue = f"bench:arq:{uuid.uuid4().hex}"
    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        handle_signals=False,
    )
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    task = asyncio.create_task(worker.async_run())
    try:

        async def enqueue(at: float) -> None:
            await pool.enqueue_job("noop", at)

        return await drive(
            "bare arq (defaults)", recorder, enqueue, jobs=options.jobs, rate=options.rate, burst=options.burst
        )
    finally:
        # Jobs still finishing when the last one started are cancelled by close(); that is expected here.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.delete(queue)
        await pool.aclose()


async def run_asyncio_queue(options: argparse.Namespace) -> Result:
    """An in-process ``asyncio.Queue`` with 20 consumers: the floor."""
    recorder = Recorder()
    queue: asyncio.Queue[float] = asyncio.Queue()

    async def consume() -> None:
        while True:
            recorder.started(await queue.get())

    consumers = [asyncio.create_task(consume()) for _ in range(20)]
    try:

        async def enqueue(at: float) -> None:
            queue.put_nowait(at)

        return await drive(
            "asyncio.Queue (floor)", recorder, enqueue, jobs=options.jobs, rate=options.rate, burst=options.burst
        )
    finally:
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)


async def run_all(env: dict[str, str], options: argparse.Namespace) -> list[Result]:
    """Every queue, one after the other, in one event loop."""
    return [
        await run_tribe(env, options),
        await run_bare_arq(env["TRIBE_REDIS_URL"], options),
        await run_asyncio_queue(options),
    ]


def main() -> None:
    """Start the engines, measure the three queues, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the paced latency run")
    parser.add_argument("--rate", type=float, default=50, help="jobs per second in the latency run")
    parser.add_argument("--burst", type=int, default=2000, help="jobs enqueued at once in the throughput run")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tribe-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp) / "engines", external=os.environ)
        env = {**os.environ, **stack.start(), "TRIBE_LOG_LEVEL": "WARNING"}
        env.setdefault("TRIBE_JWT_SECRET", uuid.uuid4().hex * 2)
        try:
            upgrade(env["TRIBE_DATABASE_URL"])
            results = asyncio.run(run_all(env, options))
        finally:
            stack.stop()

    table = Table(
        title=f"enqueue -> start ({options.jobs} jobs at {options.rate:g}/s) and throughput ({options.burst} at once)"
    )
    for column in ("queue", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "jobs/s"):
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(
            result.name,
            f"{result.percentile(50):.1f}",
            f"{result.percentile(90):.1f}",
            f"{result.percentile(99):.1f}",
            f"{max(result.latencies_ms):.1f}",
            f"{statistics.fmean(result.latencies_ms):.1f}",
            f"{result.jobs_per_s:,.0f}",
        )
    console.print(table)
    tribe = results[0]
    console.print(f"tribe worker enqueue -> start p99: [bold]{tribe.percentile(99):.1f} ms[/bold] (target <= 100 ms)")


if __name__ == "__main__":
    main()
