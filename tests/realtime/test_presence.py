"""Presence over real gateways: per-socket entries, friends and chat peers told, races settle right."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection

from shared.clock import utcnow
from shared.config import Settings
from shared.domain.chat.presence import Presence, presence_key
from shared.domain.social.models import Friendship
from tests.realtime.helpers import GatewayProcess, create_account, issue_token
from tests.realtime.test_chat_gateway import Member, expect, open_chat, recv, socket

Frame = dict[str, Any]


@pytest.fixture
def member(db_sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Any:
    """A factory of fresh members."""

    async def make() -> Member:
        account = await create_account(db_sessions)
        return Member(account, issue_token(settings, account))

    return make


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client on the real API process."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield http


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A Redis client on the session's Redis."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def quick_gateway(engine_env: dict[str, str], data_dir: Path) -> Iterator[GatewayProcess]:
    """A second gateway with a half-second heartbeat, so presence entries live one second unless refreshed."""
    process = GatewayProcess(engine_env, data_dir / "logs" / "realtime-quick.log", "--heartbeat", "0.5")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def befriend(db: async_sessionmaker[AsyncSession], a: Member, b: Member) -> None:
    """Store a friendship between ``a`` and ``b`` (as an accepted request leaves it)."""
    low, high = sorted((a.account.user_id, b.account.user_id))
    async with db.begin() as session:
        session.add(Friendship(user_low_id=low, user_high_id=high, created_at=utcnow()))


async def presence_frames(ws: ClientConnection, within: float) -> list[Frame]:
    """Every ``presence`` frame that arrives within ``within`` seconds (other frames skipped)."""
    frames: list[Frame] = []
    while True:
        try:
            frame = await recv(ws, within)
        except TimeoutError:
            return frames
        if frame["type"] == "presence":
            frames.append(frame)


async def test_friends_hear_first_open_and_last_close_without_a_chat_id(
    gateway: GatewayProcess, quick_gateway: GatewayProcess, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    user, friend, stranger = await member(), await member(), await member()
    await befriend(db_sessions, user, friend)
    async with await socket(gateway.ws_url, friend) as fw, await socket(quick_gateway.ws_url, stranger) as sw:
        first = await socket(gateway.ws_url, user)
        assert await expect(fw, "presence") == {"type": "presence", "user_id": user.id, "status": "online"}
        # More sockets, on the other gateway too, change nothing while one stays open.
        second = await socket(quick_gateway.ws_url, user)
        third = await socket(gateway.ws_url, user)
        await first.close()
        await third.close()
        assert await presence_frames(fw, 0.5) == []
        await second.close()
        assert await expect(fw, "presence") == {"type": "presence", "user_id": user.id, "status": "offline"}
        # Not a friend, no shared chat: nothing about the user, ever.
        assert await presence_frames(sw, 0.3) == []


async def test_a_friend_in_a_shared_chat_hears_both_scopes_and_a_one_chat_socket_only_the_chat(
    gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    user, friend = await member(), await member()
    await befriend(db_sessions, user, friend)
    chat_id = await open_chat(api, user, friend)
    chat_url = gateway.ws_url.replace("/v1/ws", f"/v1/chats/{chat_id}/ws")
    async with (
        await socket(gateway.ws_url, friend) as general,
        await socket(chat_url, friend) as one_chat,
        await socket(gateway.ws_url, user),
    ):
        # Both scopes, and nothing about the friend's own arrival on the friend's own sockets.
        seen = await presence_frames(general, 1.0)
        assert sorted(seen, key=lambda f: "chat_id" in f) == [
            {"type": "presence", "user_id": user.id, "status": "online"},
            {"type": "presence", "chat_id": chat_id, "user_id": user.id, "status": "online"},
        ]
        assert await presence_frames(one_chat, 0.5) == [
            {"type": "presence", "chat_id": chat_id, "user_id": user.id, "status": "online"}
        ]


async def test_one_presence_entry_per_socket_kept_alive_by_the_heartbeat(
    quick_gateway: GatewayProcess, member: Any, redis: Redis
) -> None:
    user = await member()
    presence = Presence(redis)
    sockets = [await socket(quick_gateway.ws_url, user) for _ in range(3)]
    key = presence_key(user.account.user_id)
    assert await redis.zcard(key) == 3
    # Entries live one second (two heartbeats); three seconds later only refreshes keep them.
    await asyncio.sleep(3)
    assert await presence.is_online(user.account.user_id)
    assert await redis.zcard(key) == 3
    await sockets[0].close()
    async with asyncio.timeout(5):
        while await redis.zcard(key) != 2:
            await asyncio.sleep(0.02)
    for ws in sockets[1:]:
        await ws.close()
    async with asyncio.timeout(5):
        while await presence.is_online(user.account.user_id):
            await asyncio.sleep(0.02)
    # A closed socket's entry is not brought back by a refresh that listed it just before.
    await asyncio.sleep(1.2)
    assert await redis.zcard(key) == 0


async def test_racing_opens_and_closes_across_gateways_end_in_the_true_state(
    gateway: GatewayProcess,
    quick_gateway: GatewayProcess,
    member: Any,
    db_sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    user, friend = await member(), await member()
    await befriend(db_sessions, user, friend)
    presence = Presence(redis)
    urls = [gateway.ws_url, quick_gateway.ws_url]
    rng = random.Random(5)
    async with await socket(gateway.ws_url, friend) as fw:

        async def flap() -> None:
            ws = await socket(rng.choice(urls), user)
            await asyncio.sleep(rng.random() * 0.05)
            await ws.close()

        for _ in range(6):
            await asyncio.gather(*(flap() for _ in range(4)))
        frames = await presence_frames(fw, 1.0)
        assert frames, "the friend heard nothing"
        assert frames[-1]["status"] == "offline"
        assert not await presence.is_online(user.account.user_id)

        # A stale "online" never lands after the "offline" that followed it (stamps order them), so
        # ending with sockets open on both gateways, the last word is "online" and it stays true.
        stay = await asyncio.gather(*(socket(url, user) for url in urls))
        await asyncio.gather(flap(), flap())
        frames = await presence_frames(fw, 1.0)
        assert frames[-1]["status"] == "online"
        assert await presence.is_online(user.account.user_id)
        for ws in stay:
            await ws.close()
        assert (await expect(fw, "presence"))["status"] == "offline"
