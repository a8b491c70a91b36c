"""Auto-approve rules, premium-only events and ``event.updated`` through real HTTP (and a real worker)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import icalendar
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import Event
from shared.domain.users.models import User
from tests.api.club_support import add_member, create_club, outbox_events, uuid_of
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, detail, event_body, make_organizer, rsvp, soon
from tests.api.worker_support import run_notice_jobs

Sessions = async_sessionmaker[AsyncSession]


async def befriend(client: httpx.AsyncClient, a: Account, b: Account) -> None:
    """Make ``a`` and ``b`` friends through the friend-request endpoints."""
    asked = await client.post("/v1/friends/requests", json={"user_id": b.id}, headers=a.headers)
    assert asked.status_code == 201, asked.text
    accepted = await client.post(f"/v1/friends/requests/{asked.json()['id']}/accept", headers=b.headers)
    assert accepted.status_code == 200, accepted.text


async def set_tier(db: Sessions, account: Account, tier: str | None) -> None:
    """Arrange a premium tier (normally derived from a Stripe subscription by the payments feature)."""
    async with db.begin() as session:
        await session.execute(
            update(User).where(User.id == ids.decode(ids.Prefix.USER, account.id)).values(premium_tier=tier)
        )


async def events_of(db: Sessions, organizer: Account) -> int:
    """How many events ``organizer`` has stored."""
    async with db() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.organizer_id == ids.decode(ids.Prefix.USER, organizer.id))
        )
    return int(n or 0)


async def test_auto_approve_rules_are_validated(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    organizer = await make_organizer(make_account, db)
    bad = await client.post(
        "/v1/events",
        json=event_body(requires_approval=True, auto_approve=["friends_of_organizer", "everyone"]),
        headers=organizer.headers,
    )
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "invalid_auto_approve"
    assert [e["field"] for e in bad.json()["errors"]] == ["auto_approve[1]"]
    # club_members makes no sense without a club.
    clubless = await client.post(
        "/v1/events", json=event_body(auto_approve=["club_members"]), headers=organizer.headers
    )
    assert clubless.status_code == 422
    assert clubless.json()["code"] == "invalid_auto_approve"
    assert await events_of(db, organizer) == 0

    event_id = await create_event(client, organizer, requires_approval=True, auto_approve=["vouched_by_organizer"])
    patched = await client.patch(f"/v1/events/{event_id}", json={"auto_approve": ["nope"]}, headers=organizer.headers)
    assert patched.status_code == 422
    assert patched.json()["code"] == "invalid_auto_approve"
    assert (await detail(client, event_id, organizer))["auto_approve"] == ["vouched_by_organizer"]
    changed = await client.patch(
        f"/v1/events/{event_id}",
        json={"auto_approve": ["friends_of_organizer", "friends_of_organizer"]},
        headers=organizer.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["auto_approve"] == ["friends_of_organizer"]
    # Another user cannot change the rules.
    stranger = await make_account()
    refused = await client.patch(f"/v1/events/{event_id}", json={"auto_approve": []}, headers=stranger.headers)
    assert refused.status_code == 403
    assert (await detail(client, event_id, organizer))["auto_approve"] == ["friends_of_organizer"]


async def test_friends_and_vouched_people_skip_approval(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(
        client,
        organizer,
        capacity=2,
        requires_approval=True,
        auto_approve=["friends_of_organizer", "vouched_by_organizer"],
    )
    friend, vouched, stranger, late_friend, voucher_of_organizer = [await make_account() for _ in range(5)]
    await befriend(client, friend, organizer)
    await befriend(client, organizer, late_friend)
    vouch = await client.post(
        "/v1/vouches", json={"user_id": vouched.id, "note": "Great climbing partner"}, headers=organizer.headers
    )
    assert vouch.status_code == 201, vouch.text
    # A vouch in the other direction (for the organizer) is not the organizer vouching.
    reverse = await client.post(
        "/v1/vouches", json={"user_id": organizer.id, "note": "Runs good events"}, headers=voucher_of_organizer.headers
    )
    assert reverse.status_code == 201, reverse.text

    assert (await rsvp(client, event_id, friend))["status"] == "confirmed"
    assert (await rsvp(client, event_id, vouched))["status"] == "confirmed"
    assert (await rsvp(client, event_id, stranger))["status"] == "pending_approval"
    assert (await rsvp(client, event_id, voucher_of_organizer))["status"] == "pending_approval"
    # Skipping approval does not skip the capacity: the event is full, so a friend waits.
    late = await rsvp(client, event_id, late_friend)
    assert (late["status"], late["waitlist_position"]) == ("waitlisted", 1)
    confirmed = await outbox_events(db, "rsvp.confirmed", event_id=uuid_of(ids.Prefix.EVENT, event_id))
    assert {c["reason"] for c in confirmed} == {"auto_approved"}

    # A withdrawn vouch no longer counts.
    other_event = await create_event(client, organizer, requires_approval=True, auto_approve=["vouched_by_organizer"])
    revoked = await client.delete(f"/v1/vouches/{vouch.json()['id']}", headers=organizer.headers)
    assert revoked.status_code in (200, 204), revoked.text
    assert (await rsvp(client, other_event, vouched))["status"] == "pending_approval"


async def test_club_members_skip_approval_on_club_events(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    owner = await make_account()
    club = await create_club(client, owner)
    member, outsider = await make_account(), await make_account()
    await add_member(client, club, owner, member)
    event_id = await create_event(
        client, owner, club_id=club["id"], requires_approval=True, auto_approve=["club_members"]
    )
    assert (await rsvp(client, event_id, member))["status"] == "confirmed"
    assert (await rsvp(client, event_id, outsider))["status"] == "pending_approval"
    # Without the rule, members wait for approval like everyone else.
    gated = await create_event(client, owner, club_id=club["id"], requires_approval=True)
    assert (await rsvp(client, gated, member))["status"] == "pending_approval"


async def test_premium_events_are_locked_for_lower_tiers(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    organizer = await make_organizer(make_account, db)
    bad = await client.post("/v1/events", json=event_body(required_tier="gold"), headers=organizer.headers)
    assert bad.status_code == 422
    assert await events_of(db, organizer) == 0

    event_id = await create_event(client, organizer, required_tier="plus")
    free, plus, pro = await make_account(), await make_account(), await make_account()
    await set_tier(db, plus, "plus")
    await set_tier(db, pro, "pro")

    seen = await detail(client, event_id, free)
    assert (seen["required_tier"], seen["locked"]) == ("plus", True)
    assert (await detail(client, event_id, organizer))["locked"] is False
    for answer in ("going", "maybe"):
        refused = await client.post(f"/v1/events/{event_id}/rsvp", json={"status": answer}, headers=free.headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "premium_required"
    assert (await detail(client, event_id, free))["my_rsvp"] is None
    assert (await rsvp(client, event_id, free, status="not_going"))["status"] == "cancelled"

    assert (await detail(client, event_id, plus))["locked"] is False
    assert (await rsvp(client, event_id, plus))["status"] == "confirmed"
    assert (await rsvp(client, event_id, pro, status="maybe"))["status"] == "maybe"

    # Raising the bar to pro locks plus out of new answers; a lapsed subscriber may still step back.
    raised = await client.patch(f"/v1/events/{event_id}", json={"required_tier": "pro"}, headers=organizer.headers)
    assert raised.status_code == 200, raised.text
    assert (await detail(client, event_id, plus))["locked"] is True
    assert (await detail(client, event_id, pro))["locked"] is False
    more = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 1}, headers=plus.headers
    )
    assert more.json()["code"] == "premium_required"
    assert (await rsvp(client, event_id, plus, status="not_going"))["status"] == "cancelled"


async def test_premium_only_filter_on_lists_and_map_queries(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    organizer = await make_organizer(make_account, db)
    viewer = await make_account()
    tag = f"t{uuid.uuid4().hex[:10]}"
    place = {"name": "Pier", "latitude": -33.86, "longitude": 151.21, "city": "Sydney"}
    premium = await create_event(client, organizer, tags=[tag], required_tier="pro", location=place)
    regular = await create_event(client, organizer, tags=[tag], location=place)

    async def listed(**params: Any) -> list[dict[str, Any]]:
        response = await client.get("/v1/events", params={"tag": tag, **params}, headers=viewer.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    assert {e["id"] for e in await listed()} == {premium, regular}
    [only] = await listed(premium_only="true")
    assert (only["id"], only["required_tier"], only["locked"]) == (premium, "pro", True)
    [near] = await listed(premium_only="true", near="-33.86,151.21", radius_km=5)
    assert near["id"] == premium
    [boxed] = await listed(premium_only="true", bbox="151.0,-34.0,151.5,-33.5")
    assert boxed["id"] == premium
    assert {e["id"] for e in await listed(premium_only="false")} == {premium, regular}
    bad = await client.get("/v1/events", params={"premium_only": "maybe"}, headers=viewer.headers)
    assert bad.status_code in (400, 422)


def sequence_of(text: str) -> int:
    """The SEQUENCE of the only VEVENT in an ICS body."""
    [vevent] = [c for c in icalendar.Calendar.from_ical(text).walk() if c.name == "VEVENT"]
    return int(str(vevent["SEQUENCE"]))


async def notices(client: httpx.AsyncClient, user: Account, type_: str) -> list[dict[str, Any]]:
    """``user``'s notifications of ``type_``, newest first."""
    response = await client.get("/v1/notifications", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["type"] == type_]


async def test_time_and_place_changes_notify_confirmed_attendees(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, engine_env: dict[str, str]
) -> None:
    organizer = await make_organizer(make_account, db)
    title = f"Harbour swim {uuid.uuid4().hex[:6]}"
    event_id = await create_event(client, organizer, capacity=1, title=title)
    attendee, waiting = await make_account(), await make_account()
    assert (await rsvp(client, event_id, attendee))["status"] == "confirmed"
    assert (await rsvp(client, event_id, waiting))["status"] == "waitlisted"
    ics = await client.get(f"/v1/events/{event_id}/calendar.ics", headers=attendee.headers)
    first = sequence_of(ics.text)

    # A title change is not a time, place or status change: no event.updated.
    renamed = await client.patch(f"/v1/events/{event_id}", json={"title": title}, headers=organizer.headers)
    assert renamed.status_code == 200
    event_uuid = uuid_of(ids.Prefix.EVENT, event_id)
    assert await outbox_events(db, "event.updated", event_id=event_uuid) == []

    start = soon(days=5)
    moved = await client.patch(
        f"/v1/events/{event_id}",
        json={"start_time": start.isoformat(), "end_time": (start + timedelta(hours=2)).isoformat()},
        headers=organizer.headers,
    )
    assert moved.status_code == 200, moved.text
    after = await client.get(f"/v1/events/{event_id}/calendar.ics", headers=attendee.headers)
    assert sequence_of(after.text) == first + 2
    [updated] = await outbox_events(db, "event.updated", event_id=event_uuid)
    assert updated["changes"] == ["time"]
    assert updated["sequence"] == first + 2
    assert updated["attendee_ids"] == [uuid_of(ids.Prefix.USER, attendee.id)]

    # The notification job of each event.updated row is run here, not left to a worker process's pace;
    # a row whose job already ran (here or by a worker) notifies nobody twice.
    assert await run_notice_jobs(engine_env, db, "event.updated", event_id=event_uuid) == 1
    [notice] = await notices(client, attendee, "event_updated")
    assert notice["title"] == f"{title} changed"
    assert notice["payload"]["event_id"] == event_id
    assert notice["payload"]["changes"] == "time"

    place = {"name": "North Beach", "latitude": -33.79, "longitude": 151.29, "address": "1 Beach Rd"}
    relocated = await client.patch(f"/v1/events/{event_id}", json={"location": place}, headers=organizer.headers)
    assert relocated.status_code == 200
    assert await run_notice_jobs(engine_env, db, "event.updated", event_id=event_uuid) == 2
    newest = await notices(client, attendee, "event_updated")
    assert len(newest) == 2
    assert newest[0]["payload"]["changes"] == "place"

    # Cancelling: event.updated carries the status, but attendees are told once, as event_cancelled.
    assert (await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)).status_code == 200
    statuses = [e["status"] for e in await outbox_events(db, "event.updated", event_id=event_uuid)]
    assert sorted(statuses) == ["cancelled", "published", "published"]
    assert await run_notice_jobs(engine_env, db, "event.updated", event_id=event_uuid) == 3
    assert await run_notice_jobs(engine_env, db, "event.cancelled", event_id=event_uuid) == 1
    assert len(await notices(client, attendee, "event_cancelled")) == 1
    cancelled_ics = await client.get(f"/v1/events/{event_id}/calendar.ics", headers=attendee.headers)
    assert sequence_of(cancelled_ics.text) == first + 4
    assert len(await notices(client, attendee, "event_updated")) == 2
    # The waitlisted person held no seat and was never told about the changes.
    assert await notices(client, waiting, "event_updated") == []
