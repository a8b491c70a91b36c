"""Benchmark: one home-feed page (merge on read) for a user with 10,000 feed-eligible items.

The viewer belongs to 40 clubs, follows 100 creators and has 20 friends; 10,000 posts are
eligible for their feed (6,000 club posts, 4,000 profile posts) among 10,000 more that are
not (other clubs, strangers). Rows are inserted directly. Each figure is the time of
``PostService.home_feed`` (the LATERAL merge query plus card hydration: authors, clubs,
reaction and comment counts), next to a baseline measured in the same run on the same pool:
``SELECT * FROM posts ORDER BY id DESC LIMIT 20``.

    uv run python -m loadtests.feed_page [--requests 300]

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
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.db.migrate import upgrade
from shared.db.session import create_engine, create_read_session_factory, create_session_factory
from shared.dev.stack import EmbeddedStack
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership
from shared.domain.media.services import MediaService
from shared.domain.posts.models import Post
from shared.domain.posts.services import PostService, home_feed_keys
from shared.domain.social.models import Follow, Friendship
from shared.domain.users.models import User
from shared.storage import Storage

console = Console()
CLUBS, CREATORS, FRIENDS, STRANGERS = 40, 100, 20, 50
ELIGIBLE_CLUB_POSTS, ELIGIBLE_PROFILE_POSTS, NOISE_POSTS = 6_000, 4_000, 10_000


async def build(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    """Insert the viewer, their graph and 20,000 posts; return the viewer's id."""
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=60)

    def at(n: int) -> datetime:
        return start + timedelta(seconds=n * 97 + rng.randint(0, 90))

    def user(n: int) -> dict[str, object]:
        return {
            "id": ids.uuid7(),
            "email": f"bench-{uuid.uuid4().hex}@example.com",
            "password_hash": "x",
            "display_name": f"U{n}",
        }

    viewer = user(0)
    creators = [user(n) for n in range(CREATORS)]
    friends = [user(n) for n in range(FRIENDS)]
    strangers = [user(n) for n in range(STRANGERS)]
    everyone = [viewer, *creators, *friends, *strangers]
    viewer_id = viewer["id"]
    assert isinstance(viewer_id, uuid.UUID)
    friend_ids = [f["id"] for f in friends if isinstance(f["id"], uuid.UUID)]

    def club(n: int) -> dict[str, object]:
        return {
            "id": ids.uuid7(),
            "kind": "club",
            "name": f"Club {n}",
            "slug": f"bench-{uuid.uuid4().hex}",
            "privacy_level": "public",
            "owner_id": strangers[n % STRANGERS]["id"],
        }

    mine = [club(n) for n in range(CLUBS)]
    others = [club(n) for n in range(CLUBS)]
    now = datetime.now(UTC)
    posts: list[dict[str, object]] = []
    for n in range(ELIGIBLE_CLUB_POSTS):
        posts.append(
            {"club_id": mine[n % CLUBS]["id"], "author_id": strangers[n % STRANGERS]["id"], "visibility": None}
        )
    for n in range(ELIGIBLE_PROFILE_POSTS):
        author = creators[n % CREATORS] if n % 3 else friends[n % FRIENDS]
        posts.append({"club_id": None, "author_id": author["id"], "visibility": "public"})
    for n in range(NOISE_POSTS):
        if n % 2:
            posts.append(
                {"club_id": others[n % CLUBS]["id"], "author_id": strangers[n % STRANGERS]["id"], "visibility": None}
            )
        else:
            posts.append({"club_id": None, "author_id": strangers[n % STRANGERS]["id"], "visibility": "public"})
    rng.shuffle(posts)
    for n, post in enumerate(posts):
        created = at(n)
        post.update(id=ids.uuid7(), content=f"post {n}", created_at=created, updated_at=created)

    async with sessions.begin() as session:
        await session.execute(insert(User), everyone)
        await session.execute(insert(Club), [*mine, *others])
        await session.execute(
            insert(ClubMembership),
            [
                {"id": ids.uuid7(), "club_id": c["id"], "user_id": viewer_id, "status": "active", "joined_at": now}
                for c in mine
            ],
        )
        await session.execute(
            insert(Follow), [{"follower_id": viewer_id, "followee_id": c["id"], "created_at": now} for c in creators]
        )
        await session.execute(
            insert(Friendship),
            [
                {"user_low_id": min(viewer_id, f), "user_high_id": max(viewer_id, f), "created_at": now}
                for f in friend_ids
            ],
        )
        for chunk in range(0, len(posts), 5_000):
            await session.execute(insert(Post), posts[chunk : chunk + 5_000])
    async with sessions() as session:
        await session.execute(text("ANALYZE"))
    return viewer_id


async def timed(call: Callable[[], Awaitable[object]], requests: int) -> list[float]:
    """Milliseconds of ``requests`` sequential calls after a short warm-up."""
    for _ in range(20):
        await call()
    out = []
    for _ in range(requests):
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(env: dict[str, str], requests: int) -> None:
    """Build the data set and print the figures."""
    settings = load_settings(env)
    engine = create_engine(settings)
    sessions, reads = create_session_factory(engine), create_read_session_factory(engine)
    try:
        viewer_id = await build(sessions)
        claims = AccessClaims(user_id=viewer_id, session_id=uuid.uuid4(), roles=("user",), expires_at=0)
        service = PostService(sessions, reads, media=MediaService(settings, sessions, reads, Storage(settings)))
        first = await service.home_feed(claims, None, 20)
        assert len(first.items) == 20
        assert first.next_cursor
        deep_cursor = first.next_cursor
        for _ in range(49):  # page 51: items 1,001-1,020
            page = await service.home_feed(claims, deep_cursor, 20)
            assert page.next_cursor
            deep_cursor = page.next_cursor

        async def baseline() -> None:
            async with reads() as session:
                list(await session.scalars(select(Post).order_by(Post.id.desc()).limit(20)))

        async def keys_only() -> None:
            async with reads() as session:
                list(await session.execute(home_feed_keys(viewer_id, None, 21)))

        figures = {
            "baseline: SELECT posts ORDER BY id DESC LIMIT 20": await timed(baseline, requests),
            "home feed merge query only (keys of page 1)": await timed(keys_only, requests),
            "home feed, first page (20 cards)": await timed(lambda: service.home_feed(claims, None, 20), requests),
            "home feed, page 51 (after 1,000 items)": await timed(
                lambda: service.home_feed(claims, deep_cursor, 20), requests
            ),
        }
    finally:
        await engine.dispose()

    table = Table(
        title=f"Feed page at {ELIGIBLE_CLUB_POSTS + ELIGIBLE_PROFILE_POSTS:,} eligible items ({requests} requests each)"
    )
    for column in ("query", "p50 ms", "p99 ms", "mean ms", "x baseline p50"):
        table.add_column(column)
    base = statistics.median(next(iter(figures.values())))
    for name, values in figures.items():
        p50 = statistics.median(values)
        table.add_row(
            name, f"{p50:.2f}", f"{percentile(values, 0.99):.2f}", f"{statistics.mean(values):.2f}", f"{p50 / base:.1f}"
        )
    console.print(table)


def main() -> None:
    """Start engines if needed, migrate, build and measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tribe-feed-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp) / "engines", external=os.environ)
        env = {**os.environ, **stack.start(), "TRIBE_LOG_LEVEL": "WARNING"}
        env.setdefault("TRIBE_JWT_SECRET", uuid.uuid4().hex * 2)
        try:
            upgrade(env["TRIBE_DATABASE_URL"])
            asyncio.run(run(env, options.requests))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
