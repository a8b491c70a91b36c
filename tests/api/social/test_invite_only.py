"""Invite-only sign-up, against a second API process started with ``TRIBE_INVITE_ONLY=true``."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.config import load_settings
from shared.dev.seed import seed_demo
from shared.domain.social.models import InviteCode
from shared.domain.users.models import User
from tests.api.conftest import PASSWORD, Account, MakeAccount, unique_email
from tests.api.social.helpers import count, problem, uid
from tests.support import client_address, free_port, start_process, stop_process, wait_http


@pytest.fixture(scope="module")
def invite_only_url(engine_env: dict[str, str], data_dir: Path) -> Iterator[str]:
    """An API process on the session's engines with invite-only sign-up switched on."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**engine_env, "TRIBE_INVITE_ONLY": "true", "TRIBE_PUBLIC_API_URL": url, "TRIBE_PUBLIC_APP_URL": url}
    log = data_dir / "logs" / "api-invite-only.log"
    process = start_process(["shared.cli", "api", "--port", str(port)], env, log)
    try:
        wait_http(f"{url}/health/ready", timeout=60, process=process, log=log)
        yield url
    finally:
        stop_process(process)


@pytest.fixture
async def gated(invite_only_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the invite-only API process, from its own loopback address."""
    transport = httpx.AsyncHTTPTransport(local_address=client_address())
    async with httpx.AsyncClient(base_url=invite_only_url, transport=transport, timeout=30) as http:
        yield http


async def new_code(client: httpx.AsyncClient, inviter: Account) -> str:
    created = await client.post("/v1/invites", headers=inviter.headers)
    assert created.status_code == 201, created.text
    code: str = created.json()["code"]
    return code


async def test_sign_up_without_or_with_a_bad_code_is_refused_and_stores_nothing(
    gated: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    for extra in ({}, {"invite_code": "ZZZZZZZZZZZZ"}):
        email = unique_email()
        response = await gated.post(
            "/v1/users", json={"email": email, "password": PASSWORD, "display_name": "Gate", **extra}
        )
        body = problem(response, 422, "invalid_invite_code")
        assert [e["field"] for e in body["errors"]] == ["invite_code"]
        assert await count(db, User, User.email == email) == 0


async def test_a_valid_code_makes_an_active_account_and_records_the_inviter(
    gated: httpx.AsyncClient, client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    inviter = await make_account()
    code = await new_code(client, inviter)
    email = unique_email()
    created = await gated.post(
        "/v1/users", json={"email": email, "password": PASSWORD, "display_name": "Invited", "invite_code": code}
    )
    assert created.status_code == 201, created.text
    login = await gated.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    me = await gated.get("/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["status"] == "active"
    async with db() as session:
        used_by = await session.scalar(select(InviteCode.used_by_id).where(InviteCode.code == code))
    assert used_by == uid(created.json()["id"])
    [item] = (await gated.get("/v1/invites", headers=inviter.headers)).json()["items"]
    assert item["used_by"]["id"] == created.json()["id"]


async def test_concurrent_sign_ups_with_one_code_let_exactly_one_in(
    gated: httpx.AsyncClient, client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    inviter = await make_account()
    code = await new_code(client, inviter)
    emails = [unique_email("race") for _ in range(6)]
    responses = await asyncio.gather(
        *(
            gated.post(
                "/v1/users", json={"email": email, "password": PASSWORD, "display_name": "Racer", "invite_code": code}
            )
            for email in emails
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [422] * 5, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"invalid_invite_code"}
    assert await count(db, User, User.email.in_(emails)) == 1
    winner = next(r for r in responses if r.status_code == 201).json()["id"]
    async with db() as session:
        assert await session.scalar(select(InviteCode.used_by_id).where(InviteCode.code == code)) == uid(winner)


async def test_the_demo_seed_bootstraps_an_invite_only_platform(
    engine_env: dict[str, str], db: async_sessionmaker[AsyncSession]
) -> None:
    await seed_demo(load_settings({**engine_env, "TRIBE_INVITE_ONLY": "true"}), Console(file=io.StringIO()))
    async with db() as session:
        admin = await session.scalar(select(User).where(User.email == "admin@demo.tribe.dev"))
    assert admin is not None
    assert admin.status == "active"
    assert "admin" in admin.roles
