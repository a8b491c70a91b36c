"""The gateway process through its public surface: HTTP on its port, frames on its sockets."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared import ids
from shared.clock import utcnow
from shared.config import Settings, load_settings
from shared.domain.auth.tokens import ALGORITHM
from shared.domain.users.models import AccountStatus
from tests.realtime.helpers import Account, GatewayProcess, create_account, issue_token
from tests.support import free_port

POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013


def init_frame(token: str, client: str = "ios") -> str:
    """A ``connection.init`` frame as a client sends it."""
    return msgspec.json.encode({"type": "connection.init", "token": token, "client": client}).decode()


async def recv_json(ws: ClientConnection, within: float = 5.0) -> dict[str, object]:
    """The next frame, parsed."""
    async with asyncio.timeout(within):
        message = await ws.recv()
    assert isinstance(message, str), "frames are text messages"
    frame = msgspec.json.decode(message)
    assert isinstance(frame, dict)
    return frame


async def closed_with(ws: ClientConnection, within: float = 5.0) -> tuple[int | None, str | None]:
    """Wait for the server to close ``ws``; its close code and reason."""
    async with asyncio.timeout(within):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def open_session(url: str, token: str) -> tuple[ClientConnection, dict[str, object]]:
    """A connected, acknowledged socket and the ack frame."""
    ws = await connect(url, open_timeout=5)
    await ws.send(init_frame(token))
    return ws, await recv_json(ws)


async def test_init_is_acknowledged_with_public_ids(
    gateway: GatewayProcess, settings: Settings, account: Account
) -> None:
    ws, ack = await open_session(gateway.ws_url, issue_token(settings, account))
    async with ws:
        assert ack["type"] == "connection.ack"
        assert ack["user_id"] == ids.encode(ids.Prefix.USER, account.user_id)
        assert ack["session_id"] == ids.encode(ids.Prefix.SESSION, account.session_id)
        assert isinstance(ack["heartbeat_ms"], int)
        assert ack["heartbeat_ms"] > 0


async def test_chat_path_of_a_chat_you_are_not_in_closes_1008(
    gateway: GatewayProcess, settings: Settings, account: Account
) -> None:
    chat_id = ids.encode(ids.Prefix.CHAT, ids.uuid7())
    url = f"ws://127.0.0.1:{gateway.port}/v1/chats/{chat_id}/ws"
    ws = await connect(url, open_timeout=5)
    await ws.send(init_frame(issue_token(settings, account)))
    assert await closed_with(ws) == (POLICY_VIOLATION, "chat_not_found")


@pytest.mark.parametrize(
    "path", ["/", "/v1/wss", "/v1/chats/not-a-chat-id/ws", f"/v1/chats/{ids.encode(ids.Prefix.USER, ids.uuid7())}/ws"]
)
async def test_unknown_path_is_404(gateway: GatewayProcess, path: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{gateway.port}{path}", open_timeout=5)
    assert info.value.response.status_code == 404


async def test_ping_frame_gets_pong(gateway: GatewayProcess, settings: Settings, account: Account) -> None:
    ws, _ = await open_session(gateway.ws_url, issue_token(settings, account))
    async with ws:
        await ws.send('{"type": "ping"}')
        assert await recv_json(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        '{"type": "message.send"}',
        '{"no_type": true}',
        "[1, 2, 3]",
        '{"type": "ping", "version": 99}',
        b'{"type": "ping"}',
        '{"type": "connection.init", "token": "again"}',
    ],
    ids=["garbage", "unknown-type", "untagged", "not-an-object", "future-version", "binary", "second-init"],
)
async def test_bad_frame_after_init_is_an_error_frame_not_a_close(
    gateway: GatewayProcess, settings: Settings, account: Account, message: str | bytes
) -> None:
    ws, _ = await open_session(gateway.ws_url, issue_token(settings, account))
    async with ws:
        await ws.send(message)
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "bad_frame"
        assert isinstance(error["message"], str)
        # The socket is still usable.
        await ws.send('{"type": "ping"}')
        assert await recv_json(ws) == {"type": "pong"}


async def test_token_signed_with_another_secret_closes_1008(
    gateway: GatewayProcess, engine_env: dict[str, str], account: Account
) -> None:
    other = load_settings({**engine_env, "TRIBE_JWT_SECRET": "another-secret-another-secret-0123456789"})
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(init_frame(issue_token(other, account)))
    assert await closed_with(ws) == (POLICY_VIOLATION, "invalid_token")


async def test_expired_token_closes_1008(gateway: GatewayProcess, settings: Settings, account: Account) -> None:
    issued_at = utcnow() - timedelta(seconds=settings.access_token_ttl_seconds + 60)
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(init_frame(issue_token(settings, account, now=issued_at)))
    assert await closed_with(ws) == (POLICY_VIOLATION, "token_expired")


async def test_token_that_is_not_an_access_token_closes_1008(
    gateway: GatewayProcess, settings: Settings, account: Account
) -> None:
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": ids.encode(ids.Prefix.USER, account.user_id),
        "sid": str(account.session_id),
        "typ": "refresh",
        "roles": ["user"],
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(init_frame(token))
    assert await closed_with(ws) == (POLICY_VIOLATION, "invalid_token")


async def test_revoked_session_closes_1008(
    gateway: GatewayProcess, settings: Settings, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    revoked = await create_account(db_sessions, revoked=True)
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(init_frame(issue_token(settings, revoked)))
    assert await closed_with(ws) == (POLICY_VIOLATION, "invalid_token")


async def test_suspended_user_closes_1008(
    gateway: GatewayProcess, settings: Settings, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    suspended = await create_account(db_sessions, status=AccountStatus.SUSPENDED)
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(init_frame(issue_token(settings, suspended)))
    assert await closed_with(ws) == (POLICY_VIOLATION, "account_suspended")


@pytest.mark.parametrize(
    ("first_frame", "reason"),
    [
        ('{"type": "connection.init", "client": "ios"}', "bad_init_frame"),
        ('{"type": "connection.init", "token": "", "client": "ios"}', "bad_init_frame"),
        ('{"type": "connection.init", "token": "not.a.jwt", "client": "ios"}', "invalid_token"),
        ("garbage", "bad_init_frame"),
        (b"\x00\x01", "bad_init_frame"),
        ('{"type": "ping"}', "init_required"),
    ],
    ids=["missing-token", "empty-token", "malformed-token", "garbage", "binary", "ping-first"],
)
async def test_bad_first_frame_closes_1008(gateway: GatewayProcess, first_frame: str | bytes, reason: str) -> None:
    ws = await connect(gateway.ws_url, open_timeout=5)
    await ws.send(first_frame)
    assert await closed_with(ws) == (POLICY_VIOLATION, reason)


async def test_no_init_frame_in_time_closes_1008(gateway: GatewayProcess) -> None:
    ws = await connect(gateway.ws_url, open_timeout=5)
    # The fixture runs the gateway with a 1 s init timeout.
    assert await closed_with(ws, within=10) == (POLICY_VIOLATION, "init_timeout")


async def test_health_counts_authenticated_connections(
    gateway: GatewayProcess, settings: Settings, account: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as http:
        before = (await http.get("/health")).json()
        ws, _ = await open_session(gateway.ws_url, issue_token(settings, account))
        async with ws:
            response = await http.get("/health")
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["status"] == "ok"
            assert body["nats"] == "connected"
            assert body["connections"] == before["connections"] + 1
        # The server notices the close a moment after the client does.
        for _ in range(100):
            if (await http.get("/health")).json()["connections"] == before["connections"]:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("closed connection still counted")


async def test_tokens_never_reach_the_log(gateway: GatewayProcess, settings: Settings, account: Account) -> None:
    token = issue_token(settings, account)
    ws, _ = await open_session(gateway.ws_url, token)
    await ws.close()
    bad = await connect(gateway.ws_url, open_timeout=5)
    await bad.send(init_frame(token + "x"))
    await closed_with(bad)
    log = gateway.log()
    assert "connection.open" in log
    assert token not in log
    assert token.rsplit(".", 1)[1] not in log  # not even the signature


async def test_database_down_closes_1013_so_clients_retry(
    engine_env: dict[str, str], settings: Settings, account: Account, tmp_path: Path
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    process = GatewayProcess({**engine_env, "TRIBE_DATABASE_URL": unreachable}, tmp_path / "gateway.log")
    try:
        await asyncio.to_thread(process.wait_ready)
        ws = await connect(process.ws_url, open_timeout=5)
        await ws.send(init_frame(issue_token(settings, account)))
        assert await closed_with(ws, within=10) == (TRY_AGAIN_LATER, "unavailable")
    finally:
        process.stop()


async def test_sigterm_turns_health_503_then_closes_sockets_1012_and_exits_0(
    engine_env: dict[str, str], settings: Settings, account: Account, tmp_path: Path
) -> None:
    process = GatewayProcess(engine_env, tmp_path / "gateway.log", "--drain-grace", "1")
    try:
        await asyncio.to_thread(process.wait_ready)
        ws, ack = await open_session(process.ws_url, issue_token(settings, account))
        assert ack["type"] == "connection.ack"

        process.terminate()
        async with httpx.AsyncClient(base_url=process.http_url) as http:
            # The drain grace (1 s) is the window in which health must already say 503.
            for _ in range(200):
                response = await http.get("/health")
                if response.status_code != 200:
                    break
                await asyncio.sleep(0.01)
            assert response.status_code == 503
            assert response.json()["status"] == "draining"
            # New sockets are refused while draining.
            with pytest.raises(InvalidStatus) as info:
                await connect(process.ws_url, open_timeout=5)
            assert info.value.response.status_code == 503

        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == SERVICE_RESTART
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        process.stop()
    log = process.log()
    assert "gateway.draining" in log
    assert "gateway.stopped" in log
