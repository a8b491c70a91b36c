"""The gateway under trouble: foreign Origins, a client that stops reading, NATS going away and back."""

from __future__ import annotations

import asyncio
import socket as stdlib_socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared.bus import ChatMessagePosted, chat_subject, encode_event
from shared.config import Settings
from shared.dev.engine import EngineContext
from shared.dev.nats import NatsEngine
from shared.domain.chat.schemas import MAX_TEXT_CHARS, Message
from tests.realtime.helpers import GatewayProcess, create_account, issue_token
from tests.realtime.test_chat_gateway import Member, expect, open_chat, recv, send_frame, socket
from tests.support import free_port

TRY_AGAIN_LATER = 1013
ALLOWED = "https://app.tribe.test, https://Admin.Tribe.test/"


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


@pytest.fixture(scope="module")
def strict_gateway(engine_env: dict[str, str], data_dir: Path) -> Iterator[GatewayProcess]:
    """A gateway that only lets two browser Origins in, with a small send queue (256 frames, 1 MiB)."""
    env = {**engine_env, "TRIBE_WS_ALLOWED_ORIGINS": ALLOWED}
    process = GatewayProcess(
        env,
        data_dir / "logs" / "realtime-strict.log",
        "--send-queue-frames",
        "256",
        "--send-queue-bytes",
        str(1024 * 1024),
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


# Origin allowlist


@pytest.mark.parametrize("origin", ["https://evil.test", "http://app.tribe.test", "https://app.tribe.test.evil.test"])
async def test_a_foreign_origin_is_refused_403_before_any_frame(
    strict_gateway: GatewayProcess, origin: str, member: Any
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(strict_gateway.ws_url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
    response = refused.value.response
    assert response.status_code == 403
    assert msgspec.json.decode(response.body) == {"code": "origin_not_allowed"}
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "origin", ["https://app.tribe.test", "https://admin.tribe.test", "HTTPS://APP.TRIBE.TEST", None]
)
async def test_listed_origins_and_native_clients_without_origin_get_in(
    strict_gateway: GatewayProcess, origin: str | None, member: Any
) -> None:
    who = await member()
    async with connect(strict_gateway.ws_url, origin=origin, open_timeout=5) as ws:  # type: ignore[arg-type]
        await ws.send(msgspec.json.encode({"type": "connection.init", "token": who.token}).decode())
        assert (await recv(ws))["type"] == "connection.ack"


async def test_without_the_setting_any_origin_gets_in(gateway: GatewayProcess, member: Any) -> None:
    who = await member()
    async with connect(gateway.ws_url, origin="https://anything.test", open_timeout=5) as ws:  # type: ignore[arg-type]
        await ws.send(msgspec.json.encode({"type": "connection.init", "token": who.token}).decode())
        assert (await recv(ws))["type"] == "connection.ack"


# Backpressure


def _small_socket(port: int) -> stdlib_socket.socket:
    """A connected TCP socket with a tiny receive buffer, so an unread stream backs up at the gateway."""
    sock = stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_client_that_stops_reading_is_closed_1013_and_others_get_everything(
    strict_gateway: GatewayProcess, api: httpx.AsyncClient, member: Any, settings: Settings
) -> None:
    slow_member, fast_member = await member(), await member()
    chat_id = await open_chat(api, slow_member, fast_member)
    slow = await connect(
        strict_gateway.ws_url, sock=_small_socket(strict_gateway.port), max_queue=1, max_size=2**20, open_timeout=5
    )
    await slow.send(msgspec.json.encode({"type": "connection.init", "token": slow_member.token}).decode())
    assert (await recv(slow))["type"] == "connection.ack"
    fast = await socket(strict_gateway.ws_url, fast_member)
    # The gateway's fan-out path gets chat events from NATS; ~12 KiB each, ~18 MiB in all, far
    # beyond the slow socket's kernel buffers plus its 1 MiB queue.
    count = 1500
    text = "€" * MAX_TEXT_CHARS
    template = {
        "id": "msg_x",
        "chat_id": chat_id,
        "seq": 0,
        "sender_id": fast_member.id,
        "client_message_id": "flood",
        "content": {"type": "text", "text": text},
        "sent_at": "2026-12-03T00:00:00Z",
        "edited_at": None,
        "deleted": False,
        "deleted_at": None,
        "reply_to": None,
        "mentions": [],
        "moderation_status": "visible",
    }
    nc = NatsClient()
    await nc.connect(settings.nats_url)

    async def flood() -> None:
        for seq in range(1, count + 1):
            message = msgspec.convert({**template, "id": f"msg_flood{seq}", "seq": seq}, Message)
            await nc.publish(chat_subject(chat_id), encode_event(ChatMessagePosted(message=message)))
            if seq % 100 == 0:
                await nc.flush()
                # A pace a reading client keeps up with (~24 MiB/s).
                await asyncio.sleep(0.05)
        await nc.flush()

    async def read_all(ws: ClientConnection) -> list[int]:
        seqs: list[int] = []
        while len(seqs) < count:
            frame = await recv(ws, within=10)
            if frame["type"] == "message.new":
                seqs.append(frame["seq"])
        return seqs

    async def overflow_logged() -> None:
        while "connection.slow_consumer" not in strict_gateway.log():
            await asyncio.sleep(0.02)

    try:
        reader = asyncio.create_task(read_all(fast))
        flooding = asyncio.create_task(flood())
        async with asyncio.timeout(15):
            await overflow_logged()
        # Now read: the backlog was dropped, the close frame follows what was already written.
        received = 0
        closed: ConnectionClosed | None = None
        async with asyncio.timeout(15):
            while closed is None:
                try:
                    frame = await recv(slow, within=10)
                except ConnectionClosed as exc:
                    closed = exc
                else:
                    received += frame["type"] == "message.new"
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (TRY_AGAIN_LATER, "slow_consumer")
        assert received < count
        await flooding
        # The reading member got every frame, in order, while the other was being cut off.
        assert await reader == list(range(1, count + 1))
        await fast.send(send_frame(chat_id, "still live"))
        await expect(fast, "ack")
    finally:
        await nc.close()
        await fast.close()
        await slow.close()


# NATS restart


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsEngine]:
    """A NATS server of this test's own, so restarting it disturbs no other test."""
    ctx = EngineContext(
        data_dir=tmp_path,
        logs_dir=tmp_path,
        startup_timeout=30,
        cancel=threading.Event(),
        on_spawn=lambda target: None,
        external={},
    )
    engine = NatsEngine(ctx, {"nats": free_port(), "nats_monitor": free_port()})
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


async def nats_state(gateway: GatewayProcess, want: str, within: float = 20) -> None:
    """Wait until the gateway's health reports NATS as ``want``."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            health = (await http.get(f"{gateway.http_url}/health")).json()
            if health["nats"] == want:
                return
            assert time.monotonic() < deadline, health
            await asyncio.sleep(0.05)


async def test_gateway_rides_out_a_nats_restart_and_resume_recovers_what_was_missed(
    own_nats: NatsEngine,
    engine_env: dict[str, str],
    data_dir: Path,
    api: httpx.AsyncClient,
    member: Any,
) -> None:
    env = {**engine_env, **own_nats.env()}
    gateway = GatewayProcess(env, data_dir / "logs" / "realtime-nats-restart.log", "--heartbeat", "1")
    try:
        gateway.wait_ready()
        a, b = await member(), await member()
        chat_id = await open_chat(api, a, b)
        async with await socket(gateway.ws_url, a) as wa:
            wb = await socket(gateway.ws_url, b)
            await wa.send(send_frame(chat_id, "before"))
            await expect(wa, "ack")
            assert (await expect(wb, "message.new"))["seq"] == 1

            await asyncio.to_thread(own_nats.stop)
            await nats_state(gateway, "reconnecting")
            # Stored and acknowledged while NATS is away; live delivery of these is not promised.
            for i in range(3):
                await wa.send(send_frame(chat_id, f"during {i}"))
                assert (await expect(wa, "ack"))["seq"] == 2 + i

            await asyncio.to_thread(own_nats.start)
            await nats_state(gateway, "connected")
            await wb.close()
            # The client resumes from the last seq it saw: the outage's messages, once, in order.
            async with await socket(gateway.ws_url, b, resume={chat_id: 1}) as wb2:
                seqs = []
                while True:
                    frame = await recv(wb2)
                    if frame["type"] == "message.new":
                        seqs.append(frame["seq"])
                    if frame["type"] == "resume.done":
                        break
                assert seqs == [2, 3, 4]
                # Subscriptions are back: live delivery works again, on both sockets' gateway.
                await wa.send(send_frame(chat_id, "after"))
                assert (await expect(wa, "ack"))["seq"] == 5
                live = await expect(wb2, "message.new")
                assert (live["seq"], live["message"]["content"]["text"]) == (5, "after")
        assert gateway.process.poll() is None
    finally:
        gateway.stop()
