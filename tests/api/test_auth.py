"""Login, refresh rotation, logout, suspension and token tampering through real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import timedelta

import httpx
import jwt
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.config import load_settings
from shared.domain.auth.tokens import AccessTokens
from shared.domain.users.models import User
from tests.api.conftest import PASSWORD, MakeAccount, unique_email
from tests.conftest import JWT_SECRET, RATE_LIMIT_PER_MINUTE


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def test_login_returns_the_token_pair(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    response = await client.post("/v1/auth/login", json={"email": account.email.upper(), "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user_id"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["user_id"] == account.id
    claims = claims_of(body["access_token"])
    assert claims["typ"] == "access"
    assert claims["aud"] == "tribe-api"
    assert claims["iss"] == "tribe"
    assert int(claims["exp"]) - int(claims["iat"]) == 900  # type: ignore[call-overload]
    assert (
        await client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    ).status_code == 200


async def test_wrong_email_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    account = await make_account()
    wrong_password = await client.post("/v1/auth/login", json={"email": account.email, "password": "not-the-password"})
    unknown_email = await client.post("/v1/auth/login", json={"email": unique_email(), "password": PASSWORD})
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_credentials"
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]


async def test_refresh_rotates_and_the_old_token_is_spent(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    first = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != account.refresh_token
    assert (
        await client.get("/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    ).status_code == 200
    second = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert second.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_family(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    account = await make_account()
    rotated = (await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})).json()
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    # Every token of the family is dead: the rotated refresh token and both access tokens.
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).status_code == 401
    for access in (account.access_token, rotated["access_token"]):
        assert (await client.get("/v1/users/me", headers={"Authorization": f"Bearer {access}"})).status_code == 401
    # Another login is a new family and works.
    fresh = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert fresh.status_code == 200


async def test_concurrent_refreshes_of_one_token_exactly_one_succeeds(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    account = await make_account()
    responses = await asyncio.gather(
        *(client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token}) for _ in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 5


async def test_unknown_refresh_token_and_bad_bodies(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/v1/auth/refresh", json={"refresh_token": "rt_" + uuid.uuid4().hex})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_refresh_token"
    assert (await client.post("/v1/auth/refresh", json={})).status_code == 422
    assert (await client.post("/v1/auth/login", json={"email": "a@example.com"})).status_code == 422


async def test_logout_revokes_the_family(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    # A second session of the same user survives the first one's logout.
    other = (await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})).json()
    response = await client.post(
        "/v1/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
    )
    assert response.status_code == 204
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})).status_code == 401
    assert (await client.get("/v1/users/me", headers=account.headers)).status_code == 401
    assert (
        await client.get("/v1/users/me", headers={"Authorization": f"Bearer {other['access_token']}"})
    ).status_code == 200


async def test_logout_refuses_someone_elses_refresh_token(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    alice = await make_account()
    bob = await make_account()
    response = await client.post("/v1/auth/logout", json={"refresh_token": bob.refresh_token}, headers=alice.headers)
    assert response.status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": bob.refresh_token})).status_code == 200
    assert (await client.post("/v1/auth/logout", json={"refresh_token": alice.refresh_token})).status_code == 401


async def test_suspended_user_cannot_log_in_or_use_tokens(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account()
    async with db.begin() as session:
        await session.execute(
            update(User).where(User.id == ids.decode(ids.Prefix.USER, account.id)).values(status="suspended")
        )
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.status_code == 401
    assert me.json()["code"] == "account_suspended"
    login = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert login.status_code == 401
    assert login.json()["code"] == "account_suspended"
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401


async def test_tampered_expired_and_foreign_tokens_are_refused(
    client: httpx.AsyncClient, make_account: MakeAccount, engine_env: dict[str, str]
) -> None:
    account = await make_account()
    claims = claims_of(account.access_token)
    session_id = uuid.UUID(str(claims["sid"]))
    user_id = ids.decode(ids.Prefix.USER, account.id)
    tokens = AccessTokens(load_settings(engine_env))
    header, payload, signature = account.access_token.split(".")
    now = int(time.time())

    def signed(**overrides: object) -> str:
        return jwt.encode({**claims, **overrides}, JWT_SECRET, algorithm="HS256")

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    unsigned_header = b64(b'{"alg":"none","typ":"JWT"}')
    forged_payload = b64(json.dumps({**claims, "roles": ["admin"]}).encode())
    bad_tokens = {
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "tampered payload": f"{header}.{forged_payload}.{signature}",
        "alg none": f"{unsigned_header}.{payload}.",
        "expired": tokens.issue(user_id, session_id, ("user",), utcnow() - timedelta(hours=1)),
        "wrong type": signed(typ="refresh"),
        "wrong audience": signed(aud="someone-else"),
        "wrong issuer": signed(iss="someone-else"),
        "other secret": jwt.encode({**claims, "exp": now + 600}, "x" * 48, algorithm="HS256"),
        "refresh token as access": account.refresh_token,
        "garbage": "not-a-jwt",
    }
    for name, token in bad_tokens.items():
        response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
    expired = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {bad_tokens['expired']}"})
    assert expired.json()["code"] == "token_expired"
    for header_value in ("", "Basic abc", "Bearer", "Token abc"):
        assert (await client.get("/v1/users/me", headers={"Authorization": header_value})).status_code == 401


async def test_login_is_rate_limited_with_retry_after(client: httpx.AsyncClient) -> None:
    body = {"email": unique_email(), "password": "wrong-password-123"}
    statuses = []
    for _ in range(RATE_LIMIT_PER_MINUTE + 1):
        statuses.append((response := await client.post("/v1/auth/login", json=body)).status_code)
    assert statuses[:RATE_LIMIT_PER_MINUTE] == [401] * RATE_LIMIT_PER_MINUTE
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 61


async def test_register_refresh_and_reset_are_rate_limited(client: httpx.AsyncClient) -> None:
    for path, body in (
        ("/v1/users", {"email": "bad", "password": "x", "display_name": "x"}),
        ("/v1/auth/refresh", {"refresh_token": "rt_unknown"}),
        ("/v1/auth/password-reset", {"email": unique_email()}),
    ):
        last = None
        for _ in range(RATE_LIMIT_PER_MINUTE + 1):
            last = await client.post(path, json=body)
        assert last is not None
        assert last.status_code == 429, path
        assert "retry-after" in last.headers


async def test_login_rehashes_a_password_hashed_with_weaker_parameters(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account()
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user_id = ids.decode(ids.Prefix.USER, account.id)
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == user_id).values(password_hash=weak))
    login = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert login.status_code == 200
    async with db() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == user_id))
    assert stored is not None
    assert stored != weak
    assert stored.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(stored)
