"""Events through real HTTP: create, visibility, edit rights, publish and cancel, share pages, discovery."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import Event
from tests.api.club_support import add_member, create_club, outbox_events, uuid_of
from tests.api.conftest import MakeAccount
from tests.api.events.helpers import create_event, detail, event_body, make_organizer, rsvp, soon


async def event_count(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def test_create_publish_and_read_in_seed_shape(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    body = event_body(ticketing={"type": "paid", "price_cents": 1500, "currency": "USD"})
    created = await client.post("/v1/events", json=body, headers=organizer.headers)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["id"].startswith("evt_")
    assert out["status"] == "draft"
    assert out["created_at"]
    assert await outbox_events(db, "event.created", event_id=uuid_of(ids.Prefix.EVENT, out["id"]))

    # Drafts: only the organizer sees them.
    stranger = await make_account()
    assert (await client.get(f"/v1/events/{out['id']}", headers=stranger.headers)).status_code == 404
    published = await client.post(f"/v1/events/{out['id']}/publish", headers=organizer.headers)
    assert published.status_code == 200
    assert published.json() == {"status": "published"}
    again = await client.post(f"/v1/events/{out['id']}/publish", headers=organizer.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"

    seen = await detail(client, out["id"], stranger)
    assert seen["title"] == body["title"]
    assert seen["description"] == body["description"]
    assert seen["location"]["latitude"] == 30.285
    assert seen["location"]["name"] == "Barton Creek"
    assert seen["capacity"] == 25
    assert seen["attendees"] == {"count": 0, "preview": []}
    assert seen["media"] == []
    assert seen["ticketing"] == {
        "type": "paid",
        "price_cents": 1500,
        "currency": "USD",
        "status": "open",
        "payment_provider": "stripe",
        "refund_until_hours": 24,
    }
    assert seen["waitlist_count"] == 0
    assert seen["my_rsvp"] is None
    assert seen["share_url"].endswith(f"/e/{seen['share_url'].rsplit('/', 1)[1]}")
    assert seen["can_edit"] is False
    assert seen["timezone"] == "America/Chicago"


async def test_only_organizers_create_and_bad_input_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_account()
    denied = await client.post("/v1/events", json=event_body(), headers=user.headers)
    assert denied.status_code == 403
    assert denied.json()["code"] == "organizer_required"
    assert (await client.post("/v1/events", json=event_body())).status_code == 401

    organizer = await make_organizer(make_account, db)
    before = await event_count(db)
    start = soon()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"end_time": (start - timedelta(hours=1)).isoformat(), "start_time": start.isoformat()}, "end_time"),
        ({"start_time": (soon(days=-2)).isoformat(), "end_time": soon(days=-1).isoformat()}, "start_time"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"capacity": 0}, "capacity"),
        ({"location": {"name": "X", "latitude": 91, "longitude": 0}}, "location.latitude"),
        ({"ticketing": {"type": "paid", "price_cents": 0, "currency": "USD"}}, "ticketing.price_cents"),
        ({"club_id": "club_nope"}, "club_id"),
        ({"visibility": "club"}, "club_id"),
        ({"status": "published"}, "status"),
        ({"seats_taken": 3}, "seats_taken"),
    ]
    for fields, field in cases:
        response = await client.post("/v1/events", json=event_body(**fields), headers=organizer.headers)
        assert response.status_code == 422, (fields, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in str(response.json()), (field, response.text)
    malformed = await client.post(
        "/v1/events", content=b"{", headers={**organizer.headers, "content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert await event_count(db) == before


async def test_club_admins_create_club_events_and_club_visibility(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()  # no platform role: club ownership is enough for club events
    club = await create_club(client, owner)
    member, outsider, organizer = await make_account(), await make_account(), await make_organizer(make_account, db)
    await add_member(client, club, owner, member)

    event_id = await create_event(client, owner, club_id=club["id"], visibility="club")
    assert (await detail(client, event_id, member))["club_id"] == club["id"]
    assert (await client.get(f"/v1/events/{event_id}", headers=outsider.headers)).status_code == 404
    closed = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 0}, headers=outsider.headers
    )
    assert closed.status_code == 404

    # An organizer may not attach events to a club they do not run; a member may not either.
    for someone in (organizer, member):
        denied = await client.post("/v1/events", json=event_body(club_id=club["id"]), headers=someone.headers)
        assert denied.status_code == 403
        assert denied.json()["code"] == "not_club_admin"
    missing = await client.post(
        "/v1/events", json=event_body(club_id=ids.encode(ids.Prefix.CLUB, uuid.uuid4())), headers=owner.headers
    )
    assert missing.status_code == 404

    # A club admin (not the creator) edits; a plain member cannot.
    admin = await make_account()
    await add_member(client, club, owner, admin, role="admin")
    edited = await client.patch(f"/v1/events/{event_id}", json={"title": "Renamed"}, headers=admin.headers)
    assert edited.status_code == 200
    assert edited.json()["title"] == "Renamed"
    denied = await client.patch(f"/v1/events/{event_id}", json={"title": "Nope"}, headers=member.headers)
    assert denied.status_code == 403
    assert denied.json()["code"] == "not_organizer"


async def test_edit_rules_and_lifecycle(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    other_organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer)

    denied = await client.patch(f"/v1/events/{event_id}", json={"title": "Mine"}, headers=other_organizer.headers)
    assert denied.status_code == 403
    for path in ("publish", "cancel"):
        response = await client.post(f"/v1/events/{event_id}/{path}", headers=other_organizer.headers)
        assert response.status_code == 403
    bad = await client.patch(
        f"/v1/events/{event_id}", json={"end_time": soon(days=1).isoformat()}, headers=organizer.headers
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "end_time"
    forbidden_field = await client.patch(f"/v1/events/{event_id}", json={"status": "draft"}, headers=organizer.headers)
    assert forbidden_field.status_code == 422
    assert (await client.get("/v1/events/evt_garbage", headers=organizer.headers)).status_code == 404
    unknown = ids.encode(ids.Prefix.EVENT, uuid.uuid4())
    assert (await client.get(f"/v1/events/{unknown}", headers=organizer.headers)).status_code == 404

    cancelled = await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"status": "cancelled"}
    late = await client.patch(f"/v1/events/{event_id}", json={"title": "Too late"}, headers=organizer.headers)
    assert late.status_code == 409
    assert late.json()["code"] == "event_closed"
    assert (await detail(client, event_id, organizer))["ticketing"]["status"] == "closed"


async def test_private_address_is_shown_only_to_confirmed_attendees(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    location = {"name": "Living room", "latitude": 30.26789, "longitude": -97.74321, "address": "12 Secret St"}
    event_id = await create_event(client, organizer, location=location, address_visibility="attendees", capacity=1)
    guest, late = await make_account(), await make_account()

    public_view = (await detail(client, event_id, guest))["location"]
    assert public_view["address"] is None
    assert public_view["precise"] is False
    assert (public_view["latitude"], public_view["longitude"]) == (30.27, -97.74)
    assert (await detail(client, event_id, organizer))["location"]["address"] == "12 Secret St"

    assert (await rsvp(client, event_id, guest))["status"] == "confirmed"
    mine = (await detail(client, event_id, guest))["location"]
    assert mine["address"] == "12 Secret St"
    assert mine["latitude"] == 30.26789
    # Waitlisted is not confirmed: still the rounded pin.
    assert (await rsvp(client, event_id, late))["status"] == "waitlisted"
    assert (await detail(client, event_id, late))["location"]["address"] is None

    slug = (await detail(client, event_id, guest))["share_url"].rsplit("/", 1)[1]
    page = await client.get(f"/v1/public/events/{slug}")
    assert page.status_code == 200, page.text
    assert page.json()["location"]["address"] is None
    assert page.json()["location"]["latitude"] == 30.27
    assert "12 Secret St" not in page.text
    listed = await client.get(
        "/v1/events", params={"q": "", "near": "30.2679,-97.7432", "radius_km": 1}, headers=late.headers
    )
    assert "12 Secret St" not in listed.text


async def test_share_pages_are_public_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    public_id = await create_event(client, organizer, title="Open Jam")
    private_id = await create_event(client, organizer, visibility="private")
    draft_id = await create_event(client, organizer, publish=False)
    slugs = {
        key: (await detail(client, event_id, organizer))["share_url"].rsplit("/", 1)[1]
        for key, event_id in (("public", public_id), ("private", private_id), ("draft", draft_id))
    }
    page = await client.get(f"/v1/public/events/{slugs['public']}")
    assert page.status_code == 200
    assert page.json()["title"] == "Open Jam"
    assert page.json()["organizer_name"] == "Olivia Organizer"
    assert "email" not in page.text
    for key in ("private", "draft"):
        assert (await client.get(f"/v1/public/events/{slugs[key]}")).status_code == 404
    assert (await client.get("/v1/public/events/no-such-slug")).status_code == 404
    # Private events are unlisted but reachable by id.
    stranger = await make_account()
    assert (await detail(client, private_id, stranger))["visibility"] == "private"


async def test_discovery_filters_geo_and_pagination(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    viewer = await make_account()
    marker = uuid.uuid4().hex[:8]
    # Known coordinates far from anything other tests create (the middle of the South Pacific).
    base_lat, base_lng = -40.0, -130.0
    places = {
        "center": (base_lat, base_lng),
        "east_5km": (base_lat, base_lng + 5 / 85.1),  # ~85.1 km per degree of longitude at 40°S
        "north_20km": (base_lat + 20 / 111.0, base_lng),
        "far_300km": (base_lat + 300 / 111.0, base_lng),
    }
    made = {}
    for i, (name, (lat, lng)) in enumerate(places.items()):
        made[name] = await create_event(
            client,
            organizer,
            title=f"{marker} {name}",
            start_time=soon(days=2 + i).isoformat(),
            end_time=soon(days=2 + i, hours=2).isoformat(),
            location={"name": name, "latitude": lat, "longitude": lng, "city": f"Pacifica {marker}"},
            tags=[f"tag{marker}"] if name != "far_300km" else ["other"],
            kind="activity" if name == "north_20km" else "event",
        )
    await create_event(
        client,
        organizer,
        publish=False,
        title=f"{marker} draft",
        location={"name": "d", "latitude": base_lat, "longitude": base_lng},
    )

    async def names(**params: str | float) -> list[str]:
        response = await client.get("/v1/events", params=params, headers=viewer.headers)
        assert response.status_code == 200, response.text
        return [item["title"].split(" ", 1)[1] for item in response.json()["items"]]

    near = f"{base_lat},{base_lng}"
    assert await names(near=near, radius_km=10, sort="distance") == ["center", "east_5km"]
    assert await names(near=near, radius_km=25, sort="distance") == ["center", "east_5km", "north_20km"]
    bbox = f"{base_lng - 0.1},{base_lat - 0.1},{base_lng + 0.1},{base_lat + 0.25}"
    assert await names(bbox=bbox) == ["center", "east_5km", "north_20km"]
    assert await names(bbox=bbox, kind="activity") == ["north_20km"]
    assert await names(q=marker, tag=f"tag{marker}") == ["center", "east_5km", "north_20km"]
    assert await names(city=f"pacifica {marker}", **{"from": soon(days=3.5).isoformat()}) == [
        "north_20km",
        "far_300km",
    ]
    assert await names(q=marker, to=soon(days=2.5).isoformat()) == ["center"]
    distances = (
        await client.get(
            "/v1/events", params={"near": near, "radius_km": 10, "sort": "distance"}, headers=viewer.headers
        )
    ).json()["items"]
    assert distances[0]["distance_km"] < 0.01
    assert 4.5 < distances[1]["distance_km"] < 5.5

    first = await client.get("/v1/events", params={"q": marker, "limit": 2}, headers=viewer.headers)
    second = await client.get(
        "/v1/events", params={"q": marker, "limit": 2, "cursor": first.json()["next_cursor"]}, headers=viewer.headers
    )
    titles = [i["title"] for i in first.json()["items"] + second.json()["items"]]
    assert [t.split(" ", 1)[1] for t in titles] == ["center", "east_5km", "north_20km", "far_300km"]
    assert second.json()["next_cursor"] is None
    dist_first = await client.get(
        "/v1/events", params={"near": near, "radius_km": 400, "sort": "distance", "limit": 3}, headers=viewer.headers
    )
    dist_rest = await client.get(
        "/v1/events",
        params={
            "near": near,
            "radius_km": 400,
            "sort": "distance",
            "limit": 3,
            "cursor": dist_first.json()["next_cursor"],
        },
        headers=viewer.headers,
    )
    ordered = [i["title"] for i in dist_first.json()["items"] + dist_rest.json()["items"] if marker in i["title"]]
    assert [t.split(" ", 1)[1] for t in ordered] == ["center", "east_5km", "north_20km", "far_300km"]

    bad_params: list[dict[str, str | int]] = [
        {"near": "abc"},
        {"bbox": "1,2,3"},
        {"radius_km": 5},
        {"sort": "distance"},
        {"near": near, "radius_km": 0},
        {"kind": "party"},
        {"cursor": "!!"},
        {"club_id": "nope"},
    ]
    for params in bad_params:
        response = await client.get("/v1/events", params=params, headers=viewer.headers)
        assert response.status_code == 422, (params, response.text)
