"""Uploaded media on places, and reports on places and lists reviewed by moderators (hide, remove, dismiss)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.discovery.models import ContentCase, Place
from shared.domain.moderation.models import ModerationAuditEntry
from tests.api.conftest import Account, MakeAccount
from tests.api.discovery.support import town
from tests.api.events.helpers import grant_role
from tests.api.media_support import media_row, png, ready_photo, request_upload
from tests.api.social.helpers import count, problem

Sessions = async_sessionmaker[AsyncSession]
# Uploads are processed by the worker before they are ready.
pytestmark = pytest.mark.usefixtures("worker")


def _place(city: str, lat: float, lng: float, **fields: object) -> dict[str, object]:
    return {"name": "Spot", "category": "cafe", "city": city, "latitude": lat, "longitude": lng, **fields}


async def _curator(make_account: MakeAccount, db: Sessions) -> Account:
    curator = await make_account()
    await grant_role(db, curator, "curator")
    return curator


async def _create(client: httpx.AsyncClient, curator: Account, body: dict[str, object]) -> dict[str, Any]:
    response = await client.post("/v1/places", json=body, headers=curator.headers)
    assert response.status_code == 201, response.text
    place: dict[str, Any] = response.json()
    return place


async def _audit(db: Sessions, target: str, prefix: ids.Prefix, action: str) -> int:
    target_id = ids.decode(prefix, target)
    return await count(
        db, ModerationAuditEntry, ModerationAuditEntry.target_id == target_id, ModerationAuditEntry.action == action
    )


async def test_places_take_owned_ready_uploads_and_return_their_urls(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city = town()
    curator, rival = await _curator(make_account, db), await _curator(make_account, db)
    photo = await ready_photo(client, curator, purpose="place")

    place = await _create(client, curator, _place(city, 12.0, 12.0, name="Pier", media_ids=[photo]))
    assert place["media_ids"] == [photo]
    assert [m["id"] for m in place["media"]] == [photo]
    shown = await client.get(f"/v1/places/{place['id']}", headers=rival.headers)
    assert shown.status_code == 200, shown.text
    variant_url = shown.json()["media"][0]["variants"][0]["url"]
    # Place photos in use are public, like a club's cover.
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as anonymous:
        fetched = await anonymous.get(variant_url)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/webp"
    listed = (await client.get("/v1/places", params={"city": city}, headers=rival.headers)).json()["items"]
    assert listed[0]["media"][0]["id"] == photo

    # Refused, and nothing stored: a malformed id, an upload not ready, someone else's, one for a post.
    pending = await request_upload(client, curator, png(), "image/png", purpose="place")
    theirs = await ready_photo(client, rival, purpose="place")
    for_post = await ready_photo(client, curator)
    for media_ids, status, code in (
        (["usr_nope"], 422, None),
        ([pending["media_id"]], 422, "media_not_ready"),
        ([theirs], 404, "media_not_found"),
        ([for_post], 422, "media_purpose_mismatch"),
        ([photo], 409, "media_already_attached"),
    ):
        refused = await client.post(
            "/v1/places", json=_place(city, 12.0, 12.0, name="Bad", media_ids=media_ids), headers=curator.headers
        )
        problem(refused, status, code)
    assert await count(db, Place, Place.city == city, Place.name == "Bad") == 0

    # The curator swaps the photos; the old one is let go.
    fresh = await ready_photo(client, curator, purpose="place")
    changed = await client.patch(f"/v1/places/{place['id']}", json={"media_ids": [fresh]}, headers=curator.headers)
    assert changed.status_code == 200, changed.text
    assert [m["id"] for m in changed.json()["media"]] == [fresh]
    old = await media_row(db, photo)
    assert old is not None
    assert old.attached_to_id is None
    problem(
        await client.patch(f"/v1/places/{place['id']}", json={"media_ids": [theirs]}, headers=curator.headers),
        404,
        "media_not_found",
    )

    # Two places racing for one upload: one gets it, the other is told it is taken.
    contested = await ready_photo(client, curator, purpose="place")
    results = await asyncio.gather(
        *(
            client.post(
                "/v1/places", json=_place(city, 12.0, 12.0, name="Race", media_ids=[contested]), headers=curator.headers
            )
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409]
    assert await count(db, Place, Place.city == city, Place.name == "Race") == 1

    # The curator removing the place takes its media with it; a moderator's removal is audited instead.
    assert (await client.delete(f"/v1/places/{place['id']}", headers=curator.headers)).status_code == 204
    gone = await media_row(db, fresh)
    assert gone is not None
    assert gone.status == "deleted"
    moderator = await make_account()
    await grant_role(db, moderator, "moderator")
    winner = next(r.json()["id"] for r in results if r.status_code == 201)
    assert (await client.delete(f"/v1/places/{winner}", headers=moderator.headers)).status_code == 204
    assert await _audit(db, winner, ids.Prefix.PLACE, "place.remove") == 1
    kept = await media_row(db, contested)
    assert kept is not None
    assert kept.status == "ready"


async def test_reports_on_places_and_lists_are_moderated_and_hidden_items_disappear(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    city = town()
    curator = await _curator(make_account, db)
    moderator, second_moderator = await make_account(), await make_account()
    await grant_role(db, moderator, "moderator")
    await grant_role(db, second_moderator, "moderator")
    reporter, other = await make_account(), await make_account()
    # A remote corner of the map no other test uses.
    bad = await _create(client, curator, _place(city, -61.01, 150.01, name="Bad"))
    good = await _create(client, curator, _place(city, -61.02, 150.02, name="Good"))
    body = {"title": "Tour", "city": city, "items": [{"place_id": bad["id"]}, {"place_id": good["id"]}]}
    lst = (await client.post("/v1/lists", json=body, headers=curator.headers)).json()
    place_id = ids.decode(ids.Prefix.PLACE, bad["id"])

    # Bad input, own items, unknown ids: problem+json and no case.
    report = f"/v1/places/{bad['id']}/report"
    for payload in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "spam", "extra": 1}):
        problem(await client.post(report, json=payload, headers=reporter.headers), 422)
    problem(await client.post(report, json={"reason": "mine"}, headers=curator.headers), 422, "cannot_report_own_place")
    unknown = ids.encode(ids.Prefix.PLACE, ids.uuid7())
    problem(
        await client.post(f"/v1/places/{unknown}/report", json={"reason": "x"}, headers=reporter.headers),
        404,
        "place_not_found",
    )
    problem(await client.post("/v1/places/lst_1/report", json={"reason": "x"}, headers=reporter.headers), 404)
    assert await count(db, ContentCase, ContentCase.place_id == place_id) == 0

    first = await client.post(report, json={"reason": "fake place"}, headers=reporter.headers)
    assert first.status_code == 201, first.text
    again = await client.post(report, json={"reason": "fake place"}, headers=reporter.headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # The same user reporting twice at once still makes one open case.
    raced = await asyncio.gather(
        *(client.post(report, json={"reason": "also fake"}, headers=other.headers) for _ in range(3))
    )
    assert sorted(r.status_code for r in raced) == [200, 200, 201]
    assert await count(db, ContentCase, ContentCase.place_id == place_id) == 2

    # Only moderators see the queue and decide.
    problem(await client.get("/v1/moderation/content/cases", headers=reporter.headers), 403, "moderator_required")
    queue = await client.get("/v1/moderation/content/cases", params={"limit": 100}, headers=moderator.headers)
    assert queue.status_code == 200, queue.text
    assert first.json()["id"] in [c["id"] for c in queue.json()["items"]]
    resolve = f"/v1/moderation/content/cases/{first.json()['id']}/resolve"
    problem(await client.post(resolve, json={"action": "hide"}, headers=curator.headers), 403)
    problem(await client.post(resolve, json={"action": "ban"}, headers=moderator.headers), 422)
    assert (await client.get(f"/v1/places/{bad['id']}", headers=other.headers)).status_code == 200

    hidden = await client.post(resolve, json={"action": "hide", "note": "not a real place"}, headers=moderator.headers)
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["resolution"] == "hide"
    # Hiding settles every open report on the place.
    assert await count(db, ContentCase, ContentCase.place_id == place_id, ContentCase.status == "open") == 0
    assert await _audit(db, bad["id"], ids.Prefix.PLACE, "place.hide") == 1
    problem(await client.post(resolve, json={"action": "remove"}, headers=moderator.headers), 409)

    # Gone from the detail, the directory, the map and the list; its curator cannot edit it either.
    problem(await client.get(f"/v1/places/{bad['id']}", headers=other.headers), 404)
    listed = (await client.get("/v1/places", params={"city": city}, headers=other.headers)).json()["items"]
    assert [p["id"] for p in listed] == [good["id"]]
    pins = await client.get(
        "/v1/map", params={"bbox": "149.5,-61.5,150.5,-60.5", "layers": "places"}, headers=other.headers
    )
    assert pins.status_code == 200, pins.text
    assert {p["id"] for p in pins.json()["pins"]} == {good["id"]}
    shown = (await client.get(f"/v1/lists/{lst['id']}", headers=other.headers)).json()
    assert [i["place"]["id"] for i in shown["items"]] == [good["id"]]
    problem(await client.patch(f"/v1/places/{bad['id']}", json={"name": "X"}, headers=curator.headers), 404)

    # A moderator can show it again; that is audited too.
    restore = f"/v1/moderation/content/places/{bad['id']}/restore"
    problem(await client.post(restore, headers=reporter.headers), 403)
    assert (await client.post(restore, headers=moderator.headers)).status_code == 204
    assert (await client.get(f"/v1/places/{bad['id']}", headers=other.headers)).status_code == 200
    assert await _audit(db, bad["id"], ids.Prefix.PLACE, "place.restore") == 1
    problem(await client.post(restore, headers=moderator.headers), 404)

    # Two moderators deciding one case at once: one wins, one hears it is resolved, one audit row.
    case = (
        await client.post(f"/v1/lists/{lst['id']}/report", json={"reason": "misleading"}, headers=reporter.headers)
    ).json()
    decide = f"/v1/moderation/content/cases/{case['id']}/resolve"
    decided = await asyncio.gather(
        client.post(decide, json={"action": "remove"}, headers=moderator.headers),
        client.post(decide, json={"action": "remove"}, headers=second_moderator.headers),
    )
    assert sorted(r.status_code for r in decided) == [200, 409]
    assert await _audit(db, lst["id"], ids.Prefix.LIST, "list.remove") == 1
    problem(await client.get(f"/v1/lists/{lst['id']}", headers=other.headers), 404)
    lists = (await client.get("/v1/lists", params={"city": city}, headers=other.headers)).json()["items"]
    assert lst["id"] not in [x["id"] for x in lists]

    # Dismissing leaves the place up and is still audited.
    kept = (
        await client.post(f"/v1/places/{good['id']}/report", json={"reason": "meh"}, headers=reporter.headers)
    ).json()
    dismissed = await client.post(
        f"/v1/moderation/content/cases/{kept['id']}/resolve", json={"action": "dismiss"}, headers=moderator.headers
    )
    assert dismissed.status_code == 200, dismissed.text
    assert (await client.get(f"/v1/places/{good['id']}", headers=other.headers)).status_code == 200
    assert await _audit(db, good["id"], ids.Prefix.PLACE, "content.dismiss") == 1
