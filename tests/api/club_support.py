"""Helpers for club tests: clubs and memberships made through the real endpoints."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import OutboxRow
from shared.domain.clubs.models import Club, ClubMembership
from tests.api.conftest import Account


async def create_club(client: httpx.AsyncClient, owner: Account, **fields: Any) -> dict[str, Any]:
    """Create a club and return its detail."""
    body = {"name": f"Club {uuid.uuid4().hex[:8]}", "privacy_level": "public", **fields}
    created = await client.post("/v1/clubs", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    detail = await client.get(f"/v1/clubs/{created.json()['id']}", headers=owner.headers)
    assert detail.status_code == 200, detail.text
    result: dict[str, Any] = detail.json()
    return result


async def join(client: httpx.AsyncClient, club_id: str, user: Account) -> str:
    """Join and return the resulting status."""
    response = await client.post(f"/v1/clubs/{club_id}/join", json={}, headers=user.headers)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def add_member(
    client: httpx.AsyncClient, club: dict[str, Any], owner: Account, user: Account, role: str = "member"
) -> None:
    """Make ``user`` an active member with ``role`` whatever the club's privacy (via an invite link)."""
    link = await client.post(f"/v1/clubs/{club['id']}/invite-links", json={}, headers=owner.headers)
    assert link.status_code == 201, link.text
    joined = await client.post("/v1/clubs/join-by-link", json={"code": link.json()["code"]}, headers=user.headers)
    assert joined.status_code == 200, joined.text
    if role != "member":
        changed = await client.patch(
            f"/v1/clubs/{club['id']}/members/{user.id}", json={"role": role}, headers=owner.headers
        )
        assert changed.status_code == 200, changed.text


async def ban(client: httpx.AsyncClient, club: dict[str, Any], owner: Account, user: Account) -> None:
    """Ban ``user`` from ``club``."""
    response = await client.post(f"/v1/clubs/{club['id']}/bans", json={"user_id": user.id}, headers=owner.headers)
    assert response.status_code == 200, response.text


async def stored_count(db: async_sessionmaker[AsyncSession], club_id: str) -> tuple[int, int]:
    """The stored ``member_count`` and the real number of active memberships."""
    key = ids.decode(ids.Prefix.CLUB, club_id)
    async with db() as session:
        counter = await session.scalar(select(Club.member_count).where(Club.id == key))
        actual = await session.scalar(
            select(func.count())
            .select_from(ClubMembership)
            .where(ClubMembership.club_id == key, ClubMembership.status == "active")
        )
    return int(counter or 0), int(actual or 0)


async def memberships(db: async_sessionmaker[AsyncSession], club_id: str) -> int:
    """How many membership rows (any status) a club has."""
    key = ids.decode(ids.Prefix.CLUB, club_id)
    async with db() as session:
        n = await session.scalar(select(func.count()).select_from(ClubMembership).where(ClubMembership.club_id == key))
    return int(n or 0)


async def outbox_events(db: async_sessionmaker[AsyncSession], event_type: str, **match: str) -> list[dict[str, Any]]:
    """Outbox payloads of one type whose fields equal ``match`` (UUIDs as strings)."""
    query = select(OutboxRow.payload).where(OutboxRow.event_type == event_type)
    for key, value in match.items():
        query = query.where(OutboxRow.payload[key].astext == value)
    async with db() as session:
        return list(await session.scalars(query.order_by(OutboxRow.id)))


def uuid_of(prefix: ids.Prefix, public_id: str) -> str:
    """The UUID string behind a public id (as stored in event payloads)."""
    return str(ids.decode(prefix, public_id))
