"""Benchmark: map (bbox) and radius queries over 100,000 events, indexed vs the same query unindexed.

Inserts ``--events`` published events scattered over the continental US, then times the
exact conditions the discovery endpoint uses (``bbox_condition`` and ``radius_condition``
from the events service) with the GiST indexes, the same statements with index scans
disabled (the baseline a missing index would give), and a primary-key lookup, all in
this run on this machine. Target (issue 4): a map query under 20 ms at 100,000 events.

    uv run python -m loadtests.map_query [--events 100000] [--runs 200]

Engines are started embedded in a temporary folder unless ``TRIBE_*`` URLs are set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.config import asyncpg_url
from shared.db.migrate import upgrade
from shared.dev.stack import EmbeddedStack
from shared.domain.events.models import Event
from shared.domain.events.services import bbox_condition, radius_condition

console = Console()
LIMIT = 100


async def seed(conn: AsyncConnection, n: int) -> uuid.UUID:
    """``n`` published public events at random US coordinates; returns one event id for the PK baseline."""
    organizer = uuid.uuid4()
    await conn.execute(
        text("INSERT INTO users (id, email, password_hash, display_name) VALUES (:id, :email, 'x', 'Bench organizer')"),
        {"id": organizer, "email": f"bench-{organizer.hex}@example.com"},
    )
    await conn.execute(
        text(
            """
            INSERT INTO events (id, organizer_id, slug, title, start_time, end_time, timezone, location_name,
                latitude, longitude, address_visibility, tags, visibility, kind, ticket_type, currency, status)
            SELECT gen_random_uuid(), :organizer, 'bench-' || :run || '-' || g, 'Bench event ' || g,
                s.start_time, s.start_time + interval '3 hours',
                'UTC', 'Somewhere', 25 + random() * 24, -125 + random() * 58,
                'public', '{}', 'public', 'event', 'free', 'USD', 'published'
            FROM generate_series(1, :n) AS g
            CROSS JOIN LATERAL (
                SELECT now() + interval '1 hour' + random() * interval '60 days' + g * interval '0 s' AS start_time
            ) AS s
            """
        ),
        {"organizer": organizer, "run": uuid.uuid4().hex[:8], "n": n},
    )
    await conn.execute(text("ANALYZE events"))
    any_id = (await conn.execute(text("SELECT id FROM events LIMIT 1"))).scalar_one()
    assert isinstance(any_id, uuid.UUID)
    return any_id


async def timed(runs: int, query: Callable[[int], Awaitable[int]]) -> tuple[float, float, float]:
    """p50 and p99 in milliseconds over ``runs`` calls, and the mean number of rows returned."""
    latencies, rows = [], []
    for i in range(runs):
        started = time.perf_counter()
        rows.append(await query(i))
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return (
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        (statistics.mean(rows)),
    )


async def measure(
    conn: AsyncConnection,
    now: datetime,
    centers: list[tuple[float, float]],
    any_id: uuid.UUID,
    runs: int,
    indexed: bool,
) -> list[tuple[str, float, float, float]]:
    """Time the bbox and radius statements (and, when indexed, the primary-key baseline) on ``conn``."""
    base = [Event.status == "published", Event.visibility == "public", Event.start_time >= now]

    async def by_bbox(i: int) -> int:
        lat, lng = centers[i]
        cond = bbox_condition(lng - 0.12, lat - 0.09, lng + 0.12, lat + 0.09)
        stmt = select(Event.id).where(*base, cond).order_by(Event.start_time).limit(LIMIT)
        return len((await conn.execute(stmt)).all())

    async def by_radius(i: int) -> int:
        lat, lng = centers[i]
        stmt = select(Event.id).where(*base, radius_condition(lat, lng, 10_000)).limit(LIMIT)
        return len((await conn.execute(stmt)).all())

    async def by_key(i: int) -> int:
        return len((await conn.execute(select(Event.id).where(Event.id == any_id))).all())

    await by_bbox(0)  # warm the buffer cache
    await by_radius(0)
    if indexed:
        return [
            ("primary-key lookup (baseline)", *await timed(runs, by_key)),
            ("bbox ~24x20 km, GiST point index", *await timed(runs, by_bbox)),
            ("radius 10 km, GiST ll_to_earth index", *await timed(runs, by_radius)),
        ]
    return [
        ("bbox, index scans off (baseline)", *await timed(runs, by_bbox)),
        ("radius, index scans off (baseline)", *await timed(runs, by_radius)),
    ]


async def bench(database_url: str, n: int, runs: int) -> list[tuple[str, float, float, float]]:
    """Seed, then measure every query; returns (name, p50, p99, mean rows)."""
    engine = create_async_engine(asyncpg_url(database_url))
    rng = random.Random(7)
    # City-sized windows (~20 km) around random points, the same points for every variant.
    centers = [(30 + rng.random() * 15, -120 + rng.random() * 45) for _ in range(runs)]
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            any_id = await seed(conn, n)
        results = []
        # The baseline gets an engine of its own: asyncpg caches prepared plans per connection, and a pooled
        # connection would keep the indexed plans; server_settings disable index scans from its first statement.
        off = {"server_settings": {"enable_indexscan": "off", "enable_bitmapscan": "off"}}
        for indexed in (True, False):
            variant = engine if indexed else create_async_engine(asyncpg_url(database_url), connect_args=off)
            try:
                async with variant.connect() as conn:
                    count = runs if indexed else max(runs // 10, 10)
                    results += await measure(conn, now, centers, any_id, count, indexed)
            finally:
                if not indexed:
                    await variant.dispose()
    finally:
        await engine.dispose()
    return results


def main() -> None:
    """Start (or reuse) Postgres, migrate, seed, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tribe-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp) / "engines", external=os.environ)
        try:
            env = stack.start()
            upgrade(env["TRIBE_DATABASE_URL"])
            started = time.perf_counter()
            results = asyncio.run(bench(env["TRIBE_DATABASE_URL"], options.events, options.runs))
        finally:
            stack.stop()
    table = Table(
        title=f"Map queries over {options.events:,} events (limit {LIMIT}); run took "
        f"{timedelta(seconds=round(time.perf_counter() - started))}"
    )
    for column in ("query", "p50 ms", "p99 ms", "rows (mean)"):
        table.add_column(column, justify="right")
    for name, p50, p99, rows in results:
        table.add_row(name, f"{p50:.2f}", f"{p99:.2f}", f"{rows:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
