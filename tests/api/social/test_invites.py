"""Invite codes through real HTTP, with invite-only mode off (this session's main API process)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus
from shared.domain.social.models import InviteCode
from shared.domain.social.services import INVITE_QUOTA
from shared.domain.users.models import User
from tests.api.conftest import PASSWORD, MakeAccount, unique_email
from tests.api.social.helpers import count, events, problem, uid


async def test_create_list_and_redeem_an_invite(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    inviter = await make_account()
    created = await client.post("/v1/invites", headers=inviter.headers)
    assert created.status_code == 201, created.text
    invite = created.json()
    assert invite["status"] == "unused"
    assert invite["used_by"] is None
    assert invite["expires_at"] > invite["created_at"]
    code = invite["code"]
    assert len(code) == 12

    # Codes are typed by people: case and dashes do not matter.
    typed = f"{code[:4]}-{code[4:8]}-{code[8:]}".lower()
    joined = await make_account(display_name="Newcomer", invite_code=typed)
    listed = (await client.get("/v1/invites", headers=inviter.headers)).json()
    [item] = listed["items"]
    assert item["code"] == code
    assert item["status"] == "used"
    assert item["used_by"] == {"id": joined.id, "display_name": "Newcomer", "avatar_url": None}
    assert item["used_at"] is not None

    registered = [e for e in await events(db, "user.registered") if isinstance(e, bus.UserRegistered)]
    assert [e.invited_by for e in registered if e.user_id == uid(joined.id)] == [uid(inviter.id)]

    # Used once, never again.
    again = await client.post(
        "/v1/users",
        json={"email": (email := unique_email()), "password": PASSWORD, "display_name": "Late", "invite_code": code},
    )
    problem(again, 422, "invalid_invite_code")
    assert await count(db, User, User.email == email) == 0


async def test_invalid_codes_are_refused_even_when_not_invite_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    inviter = await make_account()
    code = (await client.post("/v1/invites", headers=inviter.headers)).json()["code"]
    async with db.begin() as session:
        await session.execute(
            update(InviteCode).where(InviteCode.code == code).values(expires_at=InviteCode.created_at)
        )
    for bad in ("NOPE-NOPE-NOPE", code, ""):
        email = unique_email()
        response = await client.post(
            "/v1/users", json={"email": email, "password": PASSWORD, "display_name": "X", "invite_code": bad}
        )
        problem(response, 422)
        assert await count(db, User, User.email == email) == 0
    [item] = (await client.get("/v1/invites", headers=inviter.headers)).json()["items"]
    assert item["status"] == "expired"
    # Without a code, sign-up stays open when invite-only is off.
    assert (await make_account()).id.startswith("usr_")


async def test_quota_holds_under_concurrency(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    inviter = await make_account()
    responses = await asyncio.gather(*(client.post("/v1/invites", headers=inviter.headers) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [201] * INVITE_QUOTA + [403] * (8 - INVITE_QUOTA)
    assert {r.json()["code"] for r in responses if r.status_code == 403} == {"invite_quota_exceeded"}
    assert await count(db, InviteCode, InviteCode.inviter_id == uid(inviter.id)) == INVITE_QUOTA

    # An expired unused code frees its slot; a used one does not.
    codes = [r.json()["code"] for r in responses if r.status_code == 201]
    await make_account(invite_code=codes[0])
    async with db.begin() as session:
        await session.execute(
            update(InviteCode).where(InviteCode.code.in_(codes[:2])).values(expires_at=InviteCode.created_at)
        )
    assert (await client.post("/v1/invites", headers=inviter.headers)).status_code == 201
    problem(await client.post("/v1/invites", headers=inviter.headers), 403, "invite_quota_exceeded")

    pages: list[str] = []
    cursor = None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/invites", params=params, headers=inviter.headers)).json()
        pages += [i["code"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    async with db() as session:
        stored = list(
            await session.scalars(
                select(InviteCode.code).where(InviteCode.inviter_id == uid(inviter.id)).order_by(InviteCode.id.desc())
            )
        )
    assert pages == stored
    assert len(pages) == INVITE_QUOTA + 1


async def test_admins_have_no_quota_and_invites_are_private(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_account()
    other = await make_account()
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == uid(admin.id)).values(roles=["user", "admin"]))
    for _ in range(INVITE_QUOTA + 2):
        assert (await client.post("/v1/invites", headers=admin.headers)).status_code == 201
    assert (await client.get("/v1/invites", headers=other.headers)).json()["items"] == []
    # The code is ours to choose, not the caller's.
    problem(await client.post("/v1/invites", json={"code": "MINE"}, headers=other.headers), 422)
    assert await count(db, InviteCode, InviteCode.inviter_id == uid(other.id)) == 0


async def test_pending_accounts_cannot_invite_and_suspended_inviters_codes_stop_working(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    pending = await make_account()
    inviter = await make_account()
    code = (await client.post("/v1/invites", headers=inviter.headers)).json()["code"]
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == uid(pending.id)).values(status="pending"))
        await session.execute(update(User).where(User.id == uid(inviter.id)).values(status="suspended"))
    problem(await client.post("/v1/invites", headers=pending.headers), 403, "account_not_active")
    assert await count(db, InviteCode, InviteCode.inviter_id == uid(pending.id)) == 0
    email = unique_email()
    response = await client.post(
        "/v1/users", json={"email": email, "password": PASSWORD, "display_name": "X", "invite_code": code}
    )
    problem(response, 422, "invalid_invite_code")
    assert await count(db, User, User.email == email) == 0
