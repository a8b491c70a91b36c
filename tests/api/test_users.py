"""Sign-up and profiles through real HTTP."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.users.models import User
from tests.api.conftest import PASSWORD, MakeAccount, unique_email


async def count_users(db: async_sessionmaker[AsyncSession], email: str) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(User).where(User.email == email.lower())) or 0)


async def test_register_returns_the_public_shape(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await client.post(
        "/v1/users",
        json={
            "email": email,
            "password": PASSWORD,
            "display_name": "Alex",
            "city": "Austin",
            "interests": ["Hiking", "music", "hiking"],
            "signup_source": "ios",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "display_name", "city", "interests", "created_at"}
    assert body["id"].startswith("usr_")
    assert body["display_name"] == "Alex"
    assert body["city"] == "Austin"
    assert body["interests"] == ["hiking", "music"]
    assert "password" not in response.text


async def test_duplicate_email_is_409_case_insensitively(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    email = unique_email()
    first = await client.post("/v1/users", json={"email": email, "password": PASSWORD, "display_name": "A"})
    assert first.status_code == 201
    again = await client.post("/v1/users", json={"email": email.upper(), "password": PASSWORD, "display_name": "B"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "email_taken"
    assert await count_users(db, email) == 1


async def test_concurrent_signups_with_one_email_create_one_user(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    email = unique_email()
    body = {"email": email, "password": PASSWORD, "display_name": "Racer"}
    responses = await asyncio.gather(*(client.post("/v1/users", json=body) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert await count_users(db, email) == 1


async def test_register_validation_names_the_field_and_stores_nothing(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    cases = {
        "email": {"email": "not-an-email", "password": PASSWORD, "display_name": "A"},
        "password": {"email": unique_email(), "password": "short", "display_name": "A"},
        "display_name": {"email": unique_email(), "password": PASSWORD, "display_name": "   "},
    }
    for field, body in cases.items():
        response = await client.post("/v1/users", json=body)
        assert response.status_code == 422, (field, response.text)
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert problem["status"] == 422
        assert [e["field"] for e in problem["errors"]] == [field]
        assert await count_users(db, str(body["email"])) == 0


async def test_empty_display_name_and_unknown_fields_are_422(client: httpx.AsyncClient) -> None:
    empty = await client.post("/v1/users", json={"email": unique_email(), "password": PASSWORD, "display_name": ""})
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "display_name"
    extra = await client.post(
        "/v1/users", json={"email": unique_email(), "password": PASSWORD, "display_name": "A", "roles": ["admin"]}
    )
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "roles"


async def test_me_returns_the_full_own_profile(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account(city="Austin", interests=["hiking"])
    response = await client.get("/v1/users/me", headers=account.headers)
    assert response.status_code == 200
    me = response.json()
    assert me["id"] == account.id
    assert me["email"] == account.email
    assert me["email_verified"] is False
    assert me["roles"] == ["user"]
    assert me["timezone"] == "UTC"
    assert me["settings"] == {}
    assert me["status"] == "active"
    assert me["last_active_at"] is not None


async def test_public_profile_shape_and_unknown_ids(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    viewer = await make_account()
    other = await make_account(city="Berlin", interests=["climbing"])
    response = await client.get(f"/v1/users/{other.id}", headers=viewer.headers)
    assert response.status_code == 200
    profile = response.json()
    assert set(profile) == {
        "id",
        "display_name",
        "bio",
        "city",
        "avatar_url",
        "interests",
        "badges",
        "premium_tier",
        "mutual_clubs",
        "last_active_at",
    }
    assert profile["city"] == "Berlin"
    assert profile["badges"] == []
    assert profile["mutual_clubs"] == []
    assert "email" not in profile
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    for bad in (missing, "usr_nope", "evt_" + other.id[4:], "12345"):
        r = await client.get(f"/v1/users/{bad}", headers=viewer.headers)
        assert r.status_code == 404, bad
        assert r.headers["content-type"] == "application/problem+json"


async def test_patch_updates_allowed_fields(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    patch = {
        "bio": "Explorer of live music and foodie spots",
        "display_name": "Alex R.",
        "city": "Austin",
        "interests": ["Music", "food"],
        "avatar_url": "https://cdn.example.com/a.jpg",
        "timezone": "America/Chicago",
        "icebreaker_prompt_id": "prompt_hidden_gem",
    }
    response = await client.patch(f"/v1/users/{account.id}", json=patch, headers=account.headers)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    me = (await client.get("/v1/users/me", headers=account.headers)).json()
    assert me["bio"] == patch["bio"]
    assert me["display_name"] == "Alex R."
    assert me["interests"] == ["music", "food"]
    assert me["timezone"] == "America/Chicago"
    assert me["icebreaker_prompt_id"] == "prompt_hidden_gem"
    # Partial: an absent field stays, null clears a nullable one.
    assert (
        await client.patch(f"/v1/users/{account.id}", json={"bio": None}, headers=account.headers)
    ).status_code == 200
    me = (await client.get("/v1/users/me", headers=account.headers)).json()
    assert me["bio"] is None
    assert me["city"] == "Austin"


async def test_patch_refuses_forbidden_fields_and_bad_values(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    account = await make_account()
    for body in (
        {"email": "x@example.com"},
        {"roles": ["admin"]},
        {"premium_tier": "pro"},
        {"status": "active"},
        {"id": "usr_x"},
    ):
        response = await client.patch(f"/v1/users/{account.id}", json=body, headers=account.headers)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == next(iter(body))
    for body in ({"timezone": "Mars/Olympus"}, {"display_name": "  "}, {"avatar_url": "javascript:alert(1)"}):
        response = await client.patch(f"/v1/users/{account.id}", json=body, headers=account.headers)
        assert response.status_code == 422, body
    me = (await client.get("/v1/users/me", headers=account.headers)).json()
    assert me["email"] == account.email
    assert me["roles"] == ["user"]
    assert me["timezone"] == "UTC"


async def test_patch_another_user_is_403_unless_admin(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    response = await client.patch(f"/v1/users/{bob.id}", json={"bio": "hacked"}, headers=alice.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert (await client.get(f"/v1/users/{bob.id}", headers=bob.headers)).json()["bio"] is None
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    assert (await client.patch(f"/v1/users/{missing}", json={"bio": "x"}, headers=alice.headers)).status_code == 404

    async with db.begin() as session:
        await session.execute(
            update(User).where(User.id == ids.decode(ids.Prefix.USER, alice.id)).values(roles=["user", "admin"])
        )
    response = await client.patch(f"/v1/users/{bob.id}", json={"bio": "set by an admin"}, headers=alice.headers)
    assert response.status_code == 200
    assert (await client.get(f"/v1/users/{bob.id}", headers=bob.headers)).json()["bio"] == "set by an admin"


async def test_profile_routes_need_a_token(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    for method, path in (
        ("GET", "/v1/users/me"),
        ("GET", f"/v1/users/{account.id}"),
        ("PATCH", f"/v1/users/{account.id}"),
    ):
        response = await client.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthenticated"
