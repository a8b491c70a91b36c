"""Spaces inside clubs through real HTTP: CRUD, ordering, rights, other clubs' ids."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import ClubSpace
from tests.api.club_support import add_member, create_club
from tests.api.conftest import MakeAccount


async def space_count(db: async_sessionmaker[AsyncSession], club_id: str) -> int:
    async with db() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(ClubSpace)
                .where(ClubSpace.club_id == ids.decode(ids.Prefix.CLUB, club_id))
            )
            or 0
        )


async def names(client: httpx.AsyncClient, club_id: str, headers: dict[str, str]) -> list[tuple[str, int]]:
    page = (await client.get(f"/v1/clubs/{club_id}/spaces", headers=headers)).json()
    assert page["next_cursor"] is None
    return [(s["name"], s["position"]) for s in page["items"]]


async def test_space_crud_and_ordering(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, admin = await make_account(), await make_account()
    club = await create_club(client, owner, kind="community")
    await add_member(client, club, owner, admin, "admin")
    path = f"/v1/clubs/{club['id']}/spaces"
    created: dict[str, Any] = {}
    for name, kind in (("General", "discussion"), ("Meetups", "events"), ("Lounge", "chat")):
        response = await client.post(path, json={"name": name, "kind": kind}, headers=admin.headers)
        assert response.status_code == 201, response.text
        created[name] = response.json()
    assert created["Meetups"]["kind"] == "events"
    assert created["Meetups"]["club_id"] == club["id"]
    assert created["Meetups"]["id"].startswith("spc_")
    assert created["Meetups"]["who_can_post"] == "members"
    first = await client.post(
        path,
        json={"name": "Announcements", "kind": "discussion", "who_can_post": "moderators", "position": 0},
        headers=owner.headers,
    )
    assert first.status_code == 201
    assert first.json()["position"] == 0
    assert await names(client, club["id"], owner.headers) == [
        ("Announcements", 0),
        ("General", 1),
        ("Meetups", 2),
        ("Lounge", 3),
    ]
    moved = await client.patch(f"{path}/{created['Lounge']['id']}", json={"position": 1}, headers=admin.headers)
    assert moved.status_code == 200
    assert moved.json()["position"] == 1
    assert [n for n, _ in await names(client, club["id"], owner.headers)] == [
        "Announcements",
        "Lounge",
        "General",
        "Meetups",
    ]
    to_end = await client.patch(f"{path}/{first.json()['id']}", json={"position": 99}, headers=admin.headers)
    assert to_end.json()["position"] == 3
    renamed = await client.patch(
        f"{path}/{created['General']['id']}",
        json={"name": "Town Square", "who_can_post": "moderators", "kind": "resources", "description": "Links"},
        headers=owner.headers,
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Town Square"
    assert renamed.json()["who_can_post"] == "moderators"
    assert renamed.json()["kind"] == "resources"
    assert renamed.json()["description"] == "Links"
    deleted = await client.delete(f"{path}/{created['Lounge']['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert await names(client, club["id"], owner.headers) == [
        ("Town Square", 0),
        ("Meetups", 1),
        ("Announcements", 2),
    ]
    gone = await client.patch(f"{path}/{created['Lounge']['id']}", json={"name": "X"}, headers=admin.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "space_not_found"


async def test_only_owner_and_admin_manage_spaces(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, member, outsider = [await make_account() for _ in range(4)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, moderator, "moderator")
    await add_member(client, club, owner, member)
    path = f"/v1/clubs/{club['id']}/spaces"
    space = (await client.post(path, json={"name": "General"}, headers=owner.headers)).json()
    for user in (moderator, member, outsider):
        assert (await client.post(path, json={"name": "Mine"}, headers=user.headers)).status_code == 403
        assert (
            await client.patch(f"{path}/{space['id']}", json={"name": "X"}, headers=user.headers)
        ).status_code == 403
        assert (await client.delete(f"{path}/{space['id']}", headers=user.headers)).status_code == 403
    assert await space_count(db, club["id"]) == 1
    assert await names(client, club["id"], outsider.headers) == [("General", 0)]


async def test_space_bad_input_and_other_clubs_ids(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, other_owner = await make_account(), await make_account()
    club = await create_club(client, owner)
    other = await create_club(client, other_owner)
    path = f"/v1/clubs/{club['id']}/spaces"
    theirs = (
        await client.post(f"/v1/clubs/{other['id']}/spaces", json={"name": "Theirs"}, headers=other_owner.headers)
    ).json()
    for bad in (
        {"name": "x" * 81},
        {"name": "  "},
        {"name": "Bad kind", "kind": "forum"},
        {"name": "Bad rights", "who_can_post": "everyone"},
        {"name": "Negative", "position": -1},
        {"name": "Extra", "club_id": other["id"]},
        {},
    ):
        response = await client.post(path, json=bad, headers=owner.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await space_count(db, club["id"]) == 0
    mine = (await client.post(path, json={"name": "General"}, headers=owner.headers)).json()
    duplicate = await client.post(path, json={"name": "General"}, headers=owner.headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "space_name_taken"
    # Another club's space through this club: not found, and left untouched.
    for method, body in (("PATCH", {"name": "Hijacked"}), ("DELETE", None)):
        response = await client.request(method, f"{path}/{theirs['id']}", json=body, headers=owner.headers)
        assert response.status_code == 404, response.text
    unknown = ids.encode(ids.Prefix.SPACE, uuid.uuid4())
    assert (await client.patch(f"{path}/{unknown}", json={"name": "X"}, headers=owner.headers)).status_code == 404
    assert (
        await client.patch(f"{path}/{mine['id'].replace('spc_', 'club_')}", json={}, headers=owner.headers)
    ).status_code == 404
    assert await names(client, other["id"], other_owner.headers) == [("Theirs", 0)]
    bad_patch = await client.patch(f"{path}/{mine['id']}", json={"position": "first"}, headers=owner.headers)
    assert bad_patch.status_code == 422


async def test_concurrent_space_creation_keeps_positions_dense(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner = await make_account()
    club = await create_club(client, owner)
    path = f"/v1/clubs/{club['id']}/spaces"
    responses = await asyncio.gather(
        *(client.post(path, json={"name": f"Space {i}"}, headers=owner.headers) for i in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8
    assert [p for _, p in await names(client, club["id"], owner.headers)] == list(range(8))
