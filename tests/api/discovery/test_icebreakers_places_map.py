"""Icebreakers (daily rotation, pinning), places and curated lists (curators), and the map overlay."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.discovery.models import CuratedList, IcebreakerPrompt, Place
from tests.api.conftest import MakeAccount
from tests.api.discovery.support import tag, town
from tests.api.events.helpers import create_event, grant_role, make_organizer
from tests.api.social.helpers import count, problem

Sessions = async_sessionmaker[AsyncSession]


async def test_icebreaker_of_the_day_is_deterministic_by_date_and_can_be_pinned(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me = await make_account()
    other = await make_account()
    async with db() as session:
        catalog = list(
            await session.scalars(
                select(IcebreakerPrompt.id).where(IcebreakerPrompt.active).order_by(IcebreakerPrompt.position)
            )
        )
    assert len(catalog) >= 20
    day = date(2026, 12, 3)
    seen = []
    for offset in range(3):
        d = day + timedelta(days=offset)
        first = await client.get("/v1/icebreakers/today", params={"date": d.isoformat()}, headers=me.headers)
        second = await client.get("/v1/icebreakers/today", params={"date": d.isoformat()}, headers=other.headers)
        assert first.status_code == 200, first.text
        assert first.json() == second.json()
        assert first.json()["prompt"]["id"] == catalog[d.toordinal() % len(catalog)]
        seen.append(first.json()["prompt"]["id"])
    assert len(set(seen)) == 3
    assert (await client.get("/v1/icebreakers/today", headers=me.headers)).status_code == 200
    problem(await client.get("/v1/icebreakers/today", params={"date": "soon"}, headers=me.headers), 422)

    pinned = await client.patch(f"/v1/users/{me.id}", json={"icebreaker_prompt_id": seen[0]}, headers=me.headers)
    assert pinned.status_code == 200, pinned.text
    assert (await client.get("/v1/users/me", headers=me.headers)).json()["icebreaker_prompt_id"] == seen[0]
    bad = await client.patch(f"/v1/users/{me.id}", json={"icebreaker_prompt_id": "prompt_nope"}, headers=me.headers)
    problem(bad, 422, "unknown_icebreaker_prompt")
    assert (await client.get("/v1/users/me", headers=me.headers)).json()["icebreaker_prompt_id"] == seen[0]


def _place(city: str, lat: float, lng: float, **fields: object) -> dict[str, object]:
    return {"name": "Spot", "category": "cafe", "city": city, "latitude": lat, "longitude": lng, **fields}


async def test_places_and_lists_are_for_curators_and_moderated_like_posts(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city = town()
    curator = await make_account()
    await grant_role(db, curator, "curator")
    rival = await make_account()
    await grant_role(db, rival, "curator")
    moderator = await make_account()
    await grant_role(db, moderator, "moderator")
    user = await make_account()

    problem(
        await client.post("/v1/places", json=_place(city, 30.2, -97.7), headers=user.headers), 403, "curator_required"
    )
    for bad in (_place(city, 91, 0), _place(city, 0, 0, category=""), {"name": "x"}, _place(city, 0, 0, extra=1)):
        problem(await client.post("/v1/places", json=bad, headers=curator.headers), 422)
    assert await count(db, Place, Place.city == city) == 0

    a = (await client.post("/v1/places", json=_place(city, 30.2, -97.7, name="A"), headers=curator.headers)).json()
    b = (await client.post("/v1/places", json=_place(city, 30.3, -97.8, name="B"), headers=curator.headers)).json()
    body = {"title": "Must see", "city": city, "items": [{"place_id": b["id"], "note": "first"}, {"place_id": a["id"]}]}
    created = await client.post("/v1/lists", json=body, headers=curator.headers)
    assert created.status_code == 201, created.text
    lst = created.json()
    assert [i["place"]["id"] for i in lst["items"]] == [b["id"], a["id"]]
    assert lst["items"][0]["note"] == "first"

    problem(
        await client.post(
            "/v1/lists", json={"title": "x", "items": [{"place_id": "plc_bad"}]}, headers=curator.headers
        ),
        422,
    )
    dup = {"title": "dup", "city": city, "items": [{"place_id": a["id"]}, {"place_id": a["id"]}]}
    problem(await client.post("/v1/lists", json=dup, headers=curator.headers), 422)
    assert await count(db, CuratedList, CuratedList.city == city) == 1

    reorder = {"items": [{"place_id": a["id"]}, {"place_id": b["id"], "note": "second"}]}
    problem(await client.patch(f"/v1/lists/{lst['id']}", json=reorder, headers=rival.headers), 403)
    changed = await client.patch(f"/v1/lists/{lst['id']}", json=reorder, headers=curator.headers)
    assert changed.status_code == 200, changed.text
    assert [i["place"]["id"] for i in changed.json()["items"]] == [a["id"], b["id"]]

    problem(await client.delete(f"/v1/places/{a['id']}", headers=rival.headers), 403)
    assert (await client.delete(f"/v1/places/{a['id']}", headers=moderator.headers)).status_code == 204
    problem(await client.get(f"/v1/places/{a['id']}", headers=user.headers), 404)
    assert [
        i["place"]["id"] for i in (await client.get(f"/v1/lists/{lst['id']}", headers=user.headers)).json()["items"]
    ] == [b["id"]]
    listed = (await client.get("/v1/lists", params={"city": city}, headers=user.headers)).json()["items"]
    assert [x["id"] for x in listed] == [lst["id"]]


async def test_map_returns_pins_inside_the_box_for_the_asked_layers(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city, category = town(), tag()
    curator = await make_account()
    await grant_role(db, curator, "curator")
    organizer = await make_organizer(make_account, db)
    viewer = await make_account()
    # A remote corner of the map (South Atlantic) that no other test uses.
    inside = (-40.01, -20.01)
    outside = (-42.0, -22.0)
    p_in = (
        await client.post(
            "/v1/places", json=_place(city, *inside, category=category, is_premium=True), headers=curator.headers
        )
    ).json()
    p_out = (
        await client.post("/v1/places", json=_place(city, *outside, category=category), headers=curator.headers)
    ).json()
    loc_in = {"name": "Buoy", "latitude": inside[0], "longitude": inside[1], "city": city}
    loc_out = {"name": "Far", "latitude": outside[0], "longitude": outside[1], "city": city}
    e_in = await create_event(client, organizer, location=loc_in, tags=[category])
    e_out = await create_event(client, organizer, location=loc_out, tags=[category])
    draft = await create_event(client, organizer, location=loc_in, tags=[category], publish=False)
    bbox = "-20.5,-40.5,-19.5,-39.5"

    def pins(response: httpx.Response) -> set[tuple[str, str]]:
        assert response.status_code == 200, response.text
        return {(p["layer"], p["id"]) for p in response.json()["pins"]}

    both = pins(await client.get("/v1/map", params={"bbox": bbox}, headers=viewer.headers))
    assert both == {("places", p_in["id"]), ("events", e_in)}
    assert ("events", e_out) not in both
    assert ("places", p_out["id"]) not in both
    assert ("events", draft) not in both
    only_places = pins(await client.get("/v1/map", params={"bbox": bbox, "layers": "places"}, headers=viewer.headers))
    assert only_places == {("places", p_in["id"])}
    premium = pins(await client.get("/v1/map", params={"bbox": bbox, "premium_only": "true"}, headers=viewer.headers))
    assert premium == {("places", p_in["id"])}
    other_cat = pins(await client.get("/v1/map", params={"bbox": bbox, "category": "zzz"}, headers=viewer.headers))
    assert other_cat == set()
    later = pins(
        await client.get(
            "/v1/map", params={"bbox": bbox, "layers": "events", "from": "2099-01-01T00:00:00Z"}, headers=viewer.headers
        )
    )
    assert later == set()
    for params in ({}, {"bbox": "1,2,3"}, {"bbox": bbox, "layers": "events,boats"}, {"bbox": "-100,-80,100,80"}):
        problem(await client.get("/v1/map", params=params, headers=viewer.headers), 422)
