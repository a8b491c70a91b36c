"""Helpers for event tests: organizers, events and RSVPs made through the real endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.config import load_settings
from shared.domain.auth.models import AuthSession
from shared.domain.auth.tokens import AccessTokens
from shared.domain.users.models import User
from tests.api.conftest import Account, MakeAccount, unique_email


def soon(days: float = 3, hours: float = 0) -> datetime:
    """A start time in the future, to the second."""
    return (datetime.now(UTC) + timedelta(days=days, hours=hours)).replace(microsecond=0)


def event_body(**fields: Any) -> dict[str, Any]:
    """A valid create body (seed 000 shape); ``fields`` override."""
    start = soon()
    body: dict[str, Any] = {
        "title": f"Sunset Hike {uuid.uuid4().hex[:6]}",
        "description": "Join us for a scenic hike",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=3)).isoformat(),
        "timezone": "America/Chicago",
        "location": {"name": "Barton Creek", "latitude": 30.285, "longitude": -97.735, "city": "Austin"},
        "capacity": 25,
        "tags": ["outdoors"],
        "ticketing": {"type": "free", "price_cents": 0, "currency": "USD"},
    }
    body.update(fields)
    return body


async def grant_role(db: async_sessionmaker[AsyncSession], account: Account, role: str = "organizer") -> None:
    """Give ``account`` a platform role (roles are read from the row on every request)."""
    async with db.begin() as session:
        await session.execute(
            update(User).where(User.id == ids.decode(ids.Prefix.USER, account.id)).values(roles=["user", role])
        )


async def make_organizer(make_account: MakeAccount, db: async_sessionmaker[AsyncSession]) -> Account:
    """A fresh user with the ``organizer`` role."""
    account = await make_account(display_name="Olivia Organizer")
    await grant_role(db, account)
    return account


async def create_event(client: httpx.AsyncClient, organizer: Account, *, publish: bool = True, **fields: Any) -> str:
    """Create (and by default publish) an event; its id."""
    created = await client.post("/v1/events", json=event_body(**fields), headers=organizer.headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    if publish:
        published = await client.post(f"/v1/events/{event_id}/publish", headers=organizer.headers)
        assert published.status_code == 200, published.text
    return event_id


async def rsvp(
    client: httpx.AsyncClient, event_id: str, user: Account, status: str = "going", guests: int = 0
) -> dict[str, Any]:
    """RSVP and return the 200 body."""
    response = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": status, "guest_count": guests}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def detail(client: httpx.AsyncClient, event_id: str, user: Account) -> dict[str, Any]:
    """The event as ``user`` sees it."""
    response = await client.get(f"/v1/events/{event_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def bulk_accounts(db: async_sessionmaker[AsyncSession], engine_env: dict[str, str], n: int) -> list[Account]:
    """``n`` users with sessions and access tokens made in the database (sign-up is rate limited per address)."""
    tokens = AccessTokens(load_settings(engine_env))
    now = utcnow()
    accounts = []
    async with db.begin() as session:
        for i in range(n):
            user = User(
                id=ids.uuid7(),
                email=unique_email("bulk"),
                password_hash="not-a-password",
                display_name=f"Bulk {i}",
            )
            session.add(user)
            await session.flush()
            login = AuthSession(id=ids.uuid7(), user_id=user.id, created_at=now)
            session.add(login)
            await session.flush()
            accounts.append(
                Account(
                    id=ids.encode(ids.Prefix.USER, user.id),
                    email=user.email,
                    password="",
                    access_token=tokens.issue(user.id, login.id, ("user",), now),
                    refresh_token="",
                )
            )
    return accounts
