"""Clubs through real HTTP: create, read, update, delete, list, slugs, visibility, mutual clubs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import Club
from tests.api.club_support import (
    add_member,
    ban,
    create_club,
    join,
    outbox_events,
    stored_count,
    uuid_of,
)
from tests.api.conftest import Account, MakeAccount


async def clubs_named(db: async_sessionmaker[AsyncSession], name: str) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(Club).where(Club.name == name)) or 0)


async def test_create_returns_id_and_slug_and_makes_the_creator_owner(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    name = f"Austin Adventurers {uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/v1/clubs",
        json={
            "name": name,
            "description": "Outdoor explorations",
            "city": "Austin",
            "tags": ["Outdoors", "hiking", "outdoors"],
            "privacy_level": "public",
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "slug"}
    assert body["id"].startswith("club_")
    assert body["slug"] == name.lower().replace(" ", "-")
    detail = (await client.get(f"/v1/clubs/{body['id']}", headers=owner.headers)).json()
    assert detail["kind"] == "club"
    assert detail["name"] == name
    assert detail["city"] == "Austin"
    assert detail["tags"] == ["outdoors", "hiking"]
    assert detail["owner_id"] == owner.id
    assert detail["member_count"] == 1
    assert detail["settings"] == {"join_approval": False, "who_can_post": "members"}
    assert detail["membership"] == {"role": "owner", "status": "active"}
    created = await outbox_events(db, "club.created", club_id=uuid_of(ids.Prefix.CLUB, body["id"]))
    assert len(created) == 1
    assert created[0]["owner_id"] == uuid_of(ids.Prefix.USER, owner.id)
    assert created[0]["kind"] == "club"


async def test_duplicate_names_get_suffixed_slugs_even_concurrently(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner = await make_account()
    name = f"Slug Race {uuid.uuid4().hex[:6]}"
    base = name.lower().replace(" ", "-")
    first = await client.post("/v1/clubs", json={"name": name, "privacy_level": "public"}, headers=owner.headers)
    assert first.json()["slug"] == base
    responses = await asyncio.gather(
        *(
            client.post("/v1/clubs", json={"name": name, "privacy_level": "public"}, headers=owner.headers)
            for _ in range(6)
        )
    )
    assert [r.status_code for r in responses] == [201] * 6
    assert sorted(r.json()["slug"] for r in responses) == sorted(f"{base}-{n}" for n in range(2, 8))


async def test_slug_of_an_unusual_name(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner = await make_account()
    tag = uuid.uuid4().hex[:6]
    response = await client.post(
        "/v1/clubs",
        json={"name": f"  Café & Crème — Zürich {tag}!! ", "privacy_level": "private"},
        headers=owner.headers,
    )
    assert response.status_code == 201
    assert response.json()["slug"] == f"cafe-creme-zurich-{tag}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 81, "privacy_level": "public"}, "name"),
        ({"name": "   ", "privacy_level": "public"}, "name"),
        ({"name": "Bad privacy", "privacy_level": "hidden"}, "privacy_level"),
        ({"name": "Bad kind", "privacy_level": "public", "kind": "guild"}, "kind"),
        ({"name": "Open circle", "privacy_level": "public", "kind": "circle"}, "privacy_level"),
        ({"name": "Too many tags", "privacy_level": "public", "tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"name": "Long description", "privacy_level": "public", "description": "d" * 2001}, "description"),
        ({"name": "Member count", "privacy_level": "public", "member_count": 100}, "member_count"),
        ({"name": "Bad avatar", "privacy_level": "public", "avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"privacy_level": "public"}, "name"),
    ],
)
async def test_create_rejects_bad_input_and_stores_nothing(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    field: str,
) -> None:
    owner = await make_account()
    response = await client.post("/v1/clubs", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]], problem
    if "name" in body:
        assert await clubs_named(db, str(body["name"]).strip()) == 0


async def test_malformed_json_is_400(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner = await make_account()
    response = await client.post(
        "/v1/clubs", content=b"{not json", headers={**owner.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


async def test_clubs_need_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/clubs")).status_code == 401
    assert (await client.post("/v1/clubs", json={"name": "A", "privacy_level": "public"})).status_code == 401


async def test_unknown_and_malformed_club_ids_are_404(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    user = await make_account()
    unknown = ids.encode(ids.Prefix.CLUB, uuid.uuid4())
    for club_id in (unknown, "club_nope", user.id):
        for method, path in (
            ("GET", f"/v1/clubs/{club_id}"),
            ("POST", f"/v1/clubs/{club_id}/join"),
            ("GET", f"/v1/clubs/{club_id}/members"),
            ("GET", f"/v1/clubs/{club_id}/spaces"),
        ):
            response = await client.request(method, path, headers=user.headers, json={} if method == "POST" else None)
            assert response.status_code == 404, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"


async def test_patch_by_owner_and_admin_only(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, admin, moderator, member, outsider = [await make_account() for _ in range(5)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, admin, "admin")
    await add_member(client, club, owner, moderator, "moderator")
    await add_member(client, club, owner, member)
    patch = {
        "description": "New description",
        "city": "Denver",
        "tags": ["Climbing"],
        "avatar_url": "https://cdn.example.com/a.png",
        "cover_url": "https://cdn.example.com/c.png",
        "settings": {"join_approval": True, "who_can_post": "moderators"},
    }
    for user in (moderator, member, outsider):
        refused = await client.patch(f"/v1/clubs/{club['id']}", json=patch, headers=user.headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "insufficient_role"
    response = await client.patch(f"/v1/clubs/{club['id']}", json=patch, headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "New description"
    assert body["city"] == "Denver"
    assert body["tags"] == ["climbing"]
    assert body["avatar_url"] == "https://cdn.example.com/a.png"
    assert body["cover_url"] == "https://cdn.example.com/c.png"
    assert body["settings"] == {"join_approval": True, "who_can_post": "moderators"}
    assert body["slug"] == club["slug"]
    renamed = await client.patch(f"/v1/clubs/{club['id']}", json={"name": "Renamed"}, headers=owner.headers)
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["slug"] == club["slug"]
    for bad in ({"kind": "community"}, {"slug": "x"}, {"name": "x" * 81}, {"privacy_level": "open"}):
        rejected = await client.patch(f"/v1/clubs/{club['id']}", json=bad, headers=owner.headers)
        assert rejected.status_code == 422, (bad, rejected.text)
    after = (await client.get(f"/v1/clubs/{club['id']}", headers=owner.headers)).json()
    assert after["kind"] == "club"
    assert after["privacy_level"] == "public"
    assert after["name"] == "Renamed"


async def test_circles_stay_secret(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner = await make_account()
    circle = await create_club(client, owner, kind="circle", privacy_level="secret")
    response = await client.patch(f"/v1/clubs/{circle['id']}", json={"privacy_level": "public"}, headers=owner.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "privacy_level"


async def test_delete_by_owner_only_hides_the_club(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, admin, other = [await make_account() for _ in range(3)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, admin, "admin")
    refused = await client.delete(f"/v1/clubs/{club['id']}", headers=admin.headers)
    assert refused.status_code == 403
    assert (await client.delete(f"/v1/clubs/{club['id']}", headers=owner.headers)).status_code == 204
    for user in (owner, other):
        assert (await client.get(f"/v1/clubs/{club['id']}", headers=user.headers)).status_code == 404
        assert (await client.post(f"/v1/clubs/{club['id']}/join", json={}, headers=user.headers)).status_code == 404
    listed = await client.get("/v1/clubs", params={"q": club["name"]}, headers=other.headers)
    assert listed.json()["items"] == []


async def test_list_filters_and_paginates(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner = await make_account()
    city = f"City-{uuid.uuid4().hex[:8]}"
    made = [
        await create_club(client, owner, name=f"Hikers {i}", city=city, tags=["hiking" if i % 2 else "food"])
        for i in range(5)
    ]
    community = await create_club(client, owner, name="Makers", city=city.upper(), kind="community")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"city": city, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/clubs", params=params, headers=owner.headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [community["id"]] + [c["id"] for c in reversed(made)]
    by_tag = (await client.get("/v1/clubs", params={"city": city, "tag": "HIKING"}, headers=owner.headers)).json()
    assert {c["id"] for c in by_tag["items"]} == {made[1]["id"], made[3]["id"]}
    by_kind = (await client.get("/v1/clubs", params={"city": city, "kind": "community"}, headers=owner.headers)).json()
    assert [c["id"] for c in by_kind["items"]] == [community["id"]]
    by_q = (await client.get("/v1/clubs", params={"city": city, "q": "hikers 3"}, headers=owner.headers)).json()
    assert [c["id"] for c in by_q["items"]] == [made[3]["id"]]
    wildcard = (await client.get("/v1/clubs", params={"city": city, "q": "%"}, headers=owner.headers)).json()
    assert wildcard["items"] == []
    item = by_kind["items"][0]
    assert set(item) == {
        "id",
        "kind",
        "name",
        "slug",
        "description",
        "city",
        "tags",
        "privacy_level",
        "avatar_url",
        "member_count",
        "created_at",
        "required_tier",
        "locked",
    }
    assert item["required_tier"] is None
    assert item["locked"] is False


async def test_list_rejects_bad_parameters(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    user = await make_account()
    for params in ({"kind": "guild"}, {"cursor": "garbage!"}, {"limit": 0}):
        response = await client.get("/v1/clubs", params=params, headers=user.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def make_matrix(
    client: httpx.AsyncClient, make_account: MakeAccount, privacy: str
) -> tuple[dict[str, Any], dict[str, Account]]:
    """A club of ``privacy`` and one user in each standing: non-member, pending, member, banned."""
    owner, outsider, pending, member, banned = [await make_account() for _ in range(5)]
    # Pending needs a club that takes requests; secret clubs get theirs before they turn secret.
    start = "private" if privacy in ("private", "secret") else "public"
    club = await create_club(
        client, owner, city=f"Matrix-{uuid.uuid4().hex[:8]}", privacy_level=start, settings={"join_approval": True}
    )
    await client.post(f"/v1/clubs/{club['id']}/spaces", json={"name": "General"}, headers=owner.headers)
    assert await join(client, club["id"], pending) == "pending"
    await add_member(client, club, owner, member)
    await add_member(client, club, owner, banned)
    await ban(client, club, owner, banned)
    if privacy != start:
        changed = await client.patch(f"/v1/clubs/{club['id']}", json={"privacy_level": privacy}, headers=owner.headers)
        assert changed.status_code == 200, changed.text
    return club, {"owner": owner, "non-member": outsider, "pending": pending, "member": member, "banned": banned}


# Expected status per (privacy, standing) for: GET club, listed?, members directory, spaces.
MATRIX: dict[str, dict[str, tuple[int, bool, int, int]]] = {
    "public": {
        "non-member": (200, True, 200, 200),
        "pending": (200, True, 200, 200),
        "member": (200, True, 200, 200),
        "banned": (200, True, 403, 403),
    },
    "private": {
        "non-member": (200, True, 403, 200),
        "pending": (200, True, 403, 200),
        "member": (200, True, 200, 200),
        "banned": (200, True, 403, 403),
    },
    "secret": {
        "non-member": (404, False, 404, 404),
        "pending": (404, False, 404, 404),
        "member": (200, True, 200, 200),
        "banned": (404, False, 404, 404),
    },
}


@pytest.mark.parametrize("privacy", ["public", "private", "secret"])
async def test_visibility_matrix(client: httpx.AsyncClient, make_account: MakeAccount, privacy: str) -> None:
    club, users = await make_matrix(client, make_account, privacy)
    for standing, (get_status, listed, members_status, spaces_status) in MATRIX[privacy].items():
        user = users[standing]
        detail = await client.get(f"/v1/clubs/{club['id']}", headers=user.headers)
        assert detail.status_code == get_status, (privacy, standing, detail.text)
        if get_status == 200:
            expected = {"non-member": None, "pending": "pending", "member": "active", "banned": "banned"}[standing]
            membership = detail.json()["membership"]
            assert (membership["status"] if membership else None) == expected
        page = (await client.get("/v1/clubs", params={"city": club["city"]}, headers=user.headers)).json()
        assert (club["id"] in [c["id"] for c in page["items"]]) is listed, (privacy, standing)
        members = await client.get(f"/v1/clubs/{club['id']}/members", headers=user.headers)
        assert members.status_code == members_status, (privacy, standing, members.text)
        if members_status == 200:
            assert {m["user"]["id"] for m in members.json()["items"]} == {users["owner"].id, users["member"].id}
        else:
            assert "items" not in members.text
        spaces = await client.get(f"/v1/clubs/{club['id']}/spaces", headers=user.headers)
        assert spaces.status_code == spaces_status, (privacy, standing, spaces.text)
        if spaces_status == 200:
            assert [s["name"] for s in spaces.json()["items"]] == ["General"]


async def test_join_matrix(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, user = await make_account(), await make_account()
    public = await create_club(client, owner)
    gated = await create_club(client, owner, settings={"join_approval": True})
    private = await create_club(client, owner, privacy_level="private")
    secret = await create_club(client, owner, privacy_level="secret")
    first = await client.post(
        f"/v1/clubs/{public['id']}/join", json={"message": "Excited to join!"}, headers=user.headers
    )
    assert first.status_code == 200
    assert first.json() == {"status": "approved", "club_id": public["id"]}
    again = await client.post(f"/v1/clubs/{public['id']}/join", headers=user.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "approved"
    assert await stored_count(db, public["id"]) == (2, 2)
    assert len(await outbox_events(db, "club.member_joined", club_id=uuid_of(ids.Prefix.CLUB, public["id"]))) == 1
    assert await join(client, gated["id"], user) == "pending"
    assert await join(client, private["id"], user) == "pending"
    assert await join(client, private["id"], user) == "pending"
    assert await stored_count(db, private["id"]) == (1, 1)
    hidden = await client.post(f"/v1/clubs/{secret['id']}/join", json={}, headers=user.headers)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "club_not_found"
    banned = await make_account()
    await ban(client, public, owner, banned)
    refused = await client.post(f"/v1/clubs/{public['id']}/join", json={}, headers=banned.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "banned"
    too_long = await client.post(f"/v1/clubs/{gated['id']}/join", json={"message": "m" * 501}, headers=owner.headers)
    assert too_long.status_code == 422


async def test_concurrent_joins_of_one_user_make_one_membership(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, user = await make_account(), await make_account()
    club = await create_club(client, owner)
    responses = await asyncio.gather(
        *(client.post(f"/v1/clubs/{club['id']}/join", json={}, headers=user.headers) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["status"] for r in responses} == {"approved"}
    assert await stored_count(db, club["id"]) == (2, 2)
    joined = await outbox_events(
        db,
        "club.member_joined",
        club_id=uuid_of(ids.Prefix.CLUB, club["id"]),
        user_id=uuid_of(ids.Prefix.USER, user.id),
    )
    assert len(joined) == 1


async def test_member_count_stays_exact_under_concurrent_joins_and_leaves(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    club = await create_club(client, owner)
    users = [await make_account() for _ in range(12)]
    await asyncio.gather(*(join(client, club["id"], u) for u in users[:6]))
    results = await asyncio.gather(
        *(client.delete(f"/v1/clubs/{club['id']}/membership", headers=u.headers) for u in users[:6]),
        *(client.post(f"/v1/clubs/{club['id']}/join", json={}, headers=u.headers) for u in users[6:]),
        *(client.delete(f"/v1/clubs/{club['id']}/membership", headers=u.headers) for u in users[:3]),
    )
    for i in range(3):
        assert sorted([results[i].status_code, results[12 + i].status_code]) == [204, 404]
    assert [r.status_code for r in results[3:6]] == [204] * 3
    assert [r.status_code for r in results[6:12]] == [200] * 6
    assert await stored_count(db, club["id"]) == (7, 7)
    detail = (await client.get(f"/v1/clubs/{club['id']}", headers=owner.headers)).json()
    assert detail["member_count"] == 7


async def test_mutual_clubs_on_profiles(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    viewer, other, owner = await make_account(), await make_account(), await make_account()
    shared_public = await create_club(client, owner)
    shared_secret = await create_club(client, owner, privacy_level="secret")
    only_theirs = await create_club(client, owner)
    pending_for_viewer = await create_club(client, owner, privacy_level="private")
    for club in (shared_public, shared_secret, pending_for_viewer):
        await add_member(client, club, owner, other)
    await add_member(client, club=only_theirs, owner=owner, user=other)
    await add_member(client, shared_public, owner, viewer)
    await add_member(client, shared_secret, owner, viewer)
    assert await join(client, pending_for_viewer["id"], viewer) == "pending"
    profile = (await client.get(f"/v1/users/{other.id}", headers=viewer.headers)).json()
    assert profile["mutual_clubs"] == sorted(
        [shared_public["id"], shared_secret["id"]], key=lambda c: ids.decode(ids.Prefix.CLUB, c)
    )
    stranger = await make_account()
    assert (await client.get(f"/v1/users/{other.id}", headers=stranger.headers)).json()["mutual_clubs"] == []
