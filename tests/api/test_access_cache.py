"""The in-process access cache: a cached principal never outlives a revoke, ban, role change or deletion.

Each test first reads with the token so its principal is cached (the cache lives for
30 s), then changes access. Through the API (logout, refresh reuse) the very next
request sees it; writes always re-check in the database; changes made straight in the
database reach cached reads through the ``access_changed`` triggers and the API's
LISTEN connection, within milliseconds rather than the 30 s a stale cache would serve.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.auth.models import AuthSession
from shared.domain.gamification.models import Badge, UserBadge
from shared.domain.users.models import User
from tests.api.conftest import PASSWORD, Account, MakeAccount

# A broken invalidation would serve the cached principal for the whole 30 s cache
# lifetime; a notification crosses processes in milliseconds. This bound separates them.
PROPAGATION_S = 2.0


async def warm(client: httpx.AsyncClient, account: Account) -> None:
    """Read twice so the account's principal is in the API's cache."""
    for _ in range(2):
        assert (await client.get("/v1/users/me", headers=account.headers)).status_code == 200


async def status_soon(client: httpx.AsyncClient, path: str, headers: dict[str, str], expected: int) -> httpx.Response:
    """The first response to ``GET path`` with ``expected`` status, within the propagation bound."""
    deadline = asyncio.get_running_loop().time() + PROPAGATION_S
    while True:
        response = await client.get(path, headers=headers)
        if response.status_code == expected or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.01)


def user_uuid(account: Account) -> object:
    return ids.decode(ids.Prefix.USER, account.id)


async def test_logout_applies_to_the_very_next_request(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    await warm(client, account)
    body = {"refresh_token": account.refresh_token}
    logout = await client.post("/v1/auth/logout", json=body, headers=account.headers)
    assert logout.status_code == 204
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.status_code == 401
    assert me.headers["content-type"] == "application/problem+json"
    assert me.json()["code"] == "invalid_token"


async def test_refresh_reuse_revokes_the_cached_access_token(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    account = await make_account()
    await warm(client, account)
    first = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reuse.json()["code"] == "refresh_token_reused"
    assert (await client.get("/v1/users/me", headers=account.headers)).status_code == 401
    rotated = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get("/v1/users/me", headers=rotated)).status_code == 401


async def test_logout_of_one_session_leaves_the_others_and_other_users(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    alice = await make_account()
    bob = await make_account()
    second = (await client.post("/v1/auth/login", json={"email": alice.email, "password": PASSWORD})).json()
    alice_phone = {"Authorization": f"Bearer {second['access_token']}"}
    await warm(client, alice)
    await warm(client, bob)
    assert (await client.get("/v1/users/me", headers=alice_phone)).status_code == 200

    # Bob cannot log Alice out with her refresh token, and trying changes nothing.
    foreign = await client.post("/v1/auth/logout", json={"refresh_token": alice.refresh_token}, headers=bob.headers)
    assert foreign.status_code == 401
    assert (await client.get("/v1/users/me", headers=alice.headers)).status_code == 200

    await client.post("/v1/auth/logout", json={"refresh_token": alice.refresh_token}, headers=alice.headers)
    assert (await client.get("/v1/users/me", headers=alice.headers)).status_code == 401
    assert (await client.get("/v1/users/me", headers=alice_phone)).status_code == 200
    assert (await client.get("/v1/users/me", headers=bob.headers)).status_code == 200


async def test_suspension_in_the_database_reaches_the_cache(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account()
    await warm(client, account)
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == user_uuid(account)).values(status="suspended"))
    me = await status_soon(client, "/v1/users/me", account.headers, 401)
    assert me.status_code == 401
    assert me.json()["code"] == "account_suspended"

    async with db.begin() as session:
        await session.execute(update(User).where(User.id == user_uuid(account)).values(status="active"))
    assert (await status_soon(client, "/v1/users/me", account.headers, 200)).status_code == 200


async def test_session_revoked_or_deleted_in_the_database_reaches_the_cache(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account()
    await warm(client, account)
    async with db.begin() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_uuid(account))
            .values(revoked_at=datetime.now(UTC), revoked_reason="admin")
        )
    assert (await status_soon(client, "/v1/users/me", account.headers, 401)).status_code == 401

    other = await make_account()
    await warm(client, other)
    async with db.begin() as session:
        await session.execute(delete(AuthSession).where(AuthSession.user_id == user_uuid(other)))
    assert (await status_soon(client, "/v1/users/me", other.headers, 401)).status_code == 401


async def test_deleted_user_loses_access(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account()
    await warm(client, account)
    async with db.begin() as session:
        await session.execute(delete(User).where(User.id == user_uuid(account)))
    assert (await status_soon(client, "/v1/users/me", account.headers, 401)).status_code == 401


async def test_role_changes_apply_to_the_next_write_despite_a_cached_read(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    await warm(client, alice)
    path = f"/v1/users/{bob.id}"
    assert (await client.patch(path, json={"bio": "no"}, headers=alice.headers)).status_code == 403

    async with db.begin() as session:
        await session.execute(update(User).where(User.id == user_uuid(alice)).values(roles=["user", "admin"]))
    assert (await client.patch(path, json={"bio": "as admin"}, headers=alice.headers)).status_code == 200

    async with db.begin() as session:
        await session.execute(update(User).where(User.id == user_uuid(alice)).values(roles=["user"]))
    demoted = await client.patch(path, json={"bio": "after demotion"}, headers=alice.headers)
    assert demoted.status_code == 403
    assert (await client.get(path, headers=bob.headers)).json()["bio"] == "as admin"


async def test_requests_racing_a_logout_never_outlive_it(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    await warm(client, account)

    async def read() -> int:
        return (await client.get("/v1/users/me", headers=account.headers)).status_code

    racing = [asyncio.create_task(read()) for _ in range(20)]
    body = {"refresh_token": account.refresh_token}
    logout = await client.post("/v1/auth/logout", json=body, headers=account.headers)
    assert logout.status_code == 204
    statuses = await asyncio.gather(*racing)
    assert set(statuses) <= {200, 401}
    # Whatever the racing reads put in the cache, nothing after the logout gets through.
    after = await asyncio.gather(*(read() for _ in range(20)))
    assert after == [401] * 20


async def test_fast_own_profile_matches_the_public_profile(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    account = await make_account(city="Lisbon", interests=["Jazz", "chess"])
    async with db.begin() as session:
        codes = list((await session.scalars(select(Badge.code).order_by(Badge.code).limit(2))).all())
        assert len(codes) == 2
        earned = [datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
        await session.execute(
            insert(UserBadge),
            [
                {"user_id": user_uuid(account), "badge_code": code, "earned_at": at}
                for code, at in zip(codes, earned, strict=True)
            ],
        )
        await session.execute(
            update(User).where(User.id == user_uuid(account)).values(settings={"theme": "dark", "n": [1, 2]})
        )
    me = (await client.get("/v1/users/me", headers=account.headers)).json()
    public = (await client.get(f"/v1/users/{account.id}", headers=account.headers)).json()
    # Ordered by earned_at as the ORM path orders them, timestamps encoded the same way.
    assert me["badges"] == public["badges"]
    assert [b["code"] for b in me["badges"]] == [codes[1], codes[0]]
    for field in ("id", "display_name", "bio", "city", "avatar_url", "interests", "premium_tier"):
        assert me[field] == public[field], field
    assert me["interests"] == ["jazz", "chess"]
    assert me["settings"] == {"theme": "dark", "n": [1, 2]}
    assert me["email"] == account.email
    assert me["email_verified"] is False
    assert me["roles"] == ["user"]
    assert me["created_at"].endswith("Z") or "+" in me["created_at"]


async def test_bad_tokens_are_refused_beside_a_cached_one(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    await warm(client, account)
    tampered = account.access_token[:-2] + ("AA" if not account.access_token.endswith("AA") else "BB")
    for headers in (
        {"Authorization": f"Bearer {tampered}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {account.access_token}"},
        {},
    ):
        response = await client.get("/v1/users/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] in {"invalid_token", "unauthenticated"}
