"""RSVPs through real HTTP: capacity, waitlist promotion, guests, approval, attendees, tickets, check-in."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import RsvpChange
from tests.api.club_support import outbox_events, uuid_of
from tests.api.conftest import MakeAccount
from tests.api.events.helpers import create_event, detail, make_organizer, rsvp


async def test_capacity_waitlist_and_promotion_in_order(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=3)
    a, b, c, d = [await make_account() for _ in range(4)]

    first = await rsvp(client, event_id, a, guests=1)
    assert first["rsvp_id"].startswith("rsvp_")
    assert first["status"] == "confirmed"
    assert first["calendar_sync"] == {"google": "not_connected", "apple": "not_connected"}
    assert "waitlist_position" not in first
    # One seat left: b with a guest does not fit and waits; c (alone) queues behind b, not past it.
    assert (await rsvp(client, event_id, b, guests=1)) | {"rsvp_id": ""} == {
        "rsvp_id": "",
        "status": "waitlisted",
        "guest_count": 1,
        "waitlist_position": 1,
        "calendar_sync": {"google": "not_connected", "apple": "not_connected"},
    }
    assert (await rsvp(client, event_id, c))["waitlist_position"] == 2
    assert (await rsvp(client, event_id, d))["waitlist_position"] == 3
    seen = await detail(client, event_id, d)
    assert seen["attendees"]["count"] == 2
    assert seen["waitlist_count"] == 3
    assert seen["my_rsvp"]["status"] == "waitlisted"
    assert seen["my_rsvp"]["waitlist_position"] == 3

    # a cancels: 3 seats free; b (2 seats) then c (1) are promoted, d waits at position 1.
    assert (await rsvp(client, event_id, a, status="not_going"))["status"] == "cancelled"
    assert (await detail(client, event_id, b))["my_rsvp"]["status"] == "confirmed"
    assert (await detail(client, event_id, c))["my_rsvp"]["status"] == "confirmed"
    mine = (await detail(client, event_id, d))["my_rsvp"]
    assert (mine["status"], mine["waitlist_position"]) == ("waitlisted", 1)
    assert (await detail(client, event_id, d))["ticketing"]["status"] == "sold_out"
    event_uuid = uuid_of(ids.Prefix.EVENT, event_id)
    promoted = await outbox_events(db, "rsvp.promoted", event_id=event_uuid)
    assert [p["user_id"] for p in promoted] == [uuid_of(ids.Prefix.USER, x.id) for x in (b, c)]
    async with db() as session:
        reasons = list(
            await session.scalars(
                select(RsvpChange.reason)
                .where(RsvpChange.event_id == ids.decode(ids.Prefix.EVENT, event_id), RsvpChange.reason == "promoted")
                .order_by(RsvpChange.id)
            )
        )
    assert reasons == ["promoted", "promoted"]

    # A capacity increase promotes d; lowering below confirmed seats is refused.
    too_low = await client.patch(f"/v1/events/{event_id}", json={"capacity": 2}, headers=organizer.headers)
    assert too_low.status_code == 409
    assert too_low.json()["code"] == "capacity_below_taken"
    raised = await client.patch(f"/v1/events/{event_id}", json={"capacity": 4}, headers=organizer.headers)
    assert raised.status_code == 200
    assert raised.json()["attendees"]["count"] == 4
    assert raised.json()["waitlist_count"] == 0
    assert (await detail(client, event_id, d))["my_rsvp"]["status"] == "confirmed"

    # More guests than seats left: refused, the RSVP is unchanged; fewer guests frees a seat.
    more = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 2}, headers=b.headers
    )
    assert more.status_code == 409
    assert more.json()["code"] == "event_full"
    assert (await detail(client, event_id, b))["my_rsvp"]["guest_count"] == 1
    assert (await rsvp(client, event_id, b, guests=0))["status"] == "confirmed"
    assert (await detail(client, event_id, b))["open_spots"] == 1
    assert (await rsvp(client, event_id, a, status="maybe"))["status"] == "maybe"


async def test_rsvp_errors(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    user = await make_account()
    draft = await create_event(client, organizer, publish=False)
    cancelled = await create_event(client, organizer)
    assert (await client.post(f"/v1/events/{cancelled}/cancel", headers=organizer.headers)).status_code == 200
    closed = await client.post(
        f"/v1/events/{cancelled}/rsvp", json={"status": "going", "guest_count": 0}, headers=user.headers
    )
    assert closed.status_code == 409
    assert closed.json()["code"] == "event_closed"
    # A draft is not visible to others at all; its organizer still gets event_closed.
    hidden = await client.post(f"/v1/events/{draft}/rsvp", json={"status": "going"}, headers=user.headers)
    assert hidden.status_code == 404
    own = await client.post(f"/v1/events/{draft}/rsvp", json={"status": "going"}, headers=organizer.headers)
    assert own.status_code == 409
    assert own.json()["code"] == "event_closed"

    event_id = await create_event(client, organizer)
    bad_bodies: list[dict[str, object]] = [
        {"status": "going", "guest_count": 6},
        {"status": "going", "guest_count": -1},
        {"status": "attending"},
        {"status": "going", "seats": 2},
        {},
    ]
    for body in bad_bodies:
        response = await client.post(f"/v1/events/{event_id}/rsvp", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
    assert (await detail(client, event_id, user))["my_rsvp"] is None
    missing = ids.encode(ids.Prefix.EVENT, uuid.uuid4())
    assert (
        await client.post(f"/v1/events/{missing}/rsvp", json={"status": "going"}, headers=user.headers)
    ).status_code == 404


async def test_approval_single_batch_and_reject(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=2, requires_approval=True)
    fans = [await make_account() for _ in range(4)]
    answers = [await rsvp(client, event_id, fan) for fan in fans]
    assert {a["status"] for a in answers} == {"pending_approval"}
    rsvp_ids = [a["rsvp_id"] for a in answers]

    # Others see confirmed attendees only, without contact details.
    outsider_view = await client.get(f"/v1/events/{event_id}/attendees", headers=fans[0].headers)
    assert outsider_view.json()["items"] == []
    pending = await client.get(
        f"/v1/events/{event_id}/attendees", params={"status": "pending_approval"}, headers=organizer.headers
    )
    assert [i["rsvp_id"] for i in pending.json()["items"]] == rsvp_ids
    assert pending.json()["items"][0]["email"] == fans[0].email

    denied = await client.post(f"/v1/events/{event_id}/attendees/{rsvp_ids[0]}/approve", headers=fans[1].headers)
    assert denied.status_code == 403
    one = await client.post(f"/v1/events/{event_id}/attendees/{rsvp_ids[0]}/approve", headers=organizer.headers)
    assert one.status_code == 200
    assert one.json()["status"] == "confirmed"
    again = await client.post(f"/v1/events/{event_id}/attendees/{rsvp_ids[0]}/approve", headers=organizer.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "not_pending"

    batch = await client.post(
        f"/v1/events/{event_id}/attendees/approve",
        json={"rsvp_ids": [rsvp_ids[2], rsvp_ids[1]]},
        headers=organizer.headers,
    )
    assert batch.status_code == 200, batch.text
    assert [(i["rsvp_id"], i["status"]) for i in batch.json()["items"]] == [
        (rsvp_ids[2], "confirmed"),
        (rsvp_ids[1], "waitlisted"),
    ]
    batch_bodies: list[dict[str, object]] = [
        {"rsvp_ids": ["nope"]},
        {"rsvp_ids": []},
        {"rsvp_ids": [rsvp_ids[3]], "extra": 1},
    ]
    for body in batch_bodies:
        bad = await client.post(f"/v1/events/{event_id}/attendees/approve", json=body, headers=organizer.headers)
        assert bad.status_code == 422, body
    foreign = ids.encode(ids.Prefix.RSVP, uuid.uuid4())
    unknown = await client.post(
        f"/v1/events/{event_id}/attendees/approve", json={"rsvp_ids": [foreign]}, headers=organizer.headers
    )
    assert unknown.status_code == 404

    # Rejecting a confirmed attendee frees the seat for the head of the waitlist.
    rejected = await client.post(f"/v1/events/{event_id}/attendees/{rsvp_ids[0]}/reject", headers=organizer.headers)
    assert rejected.json()["status"] == "rejected"
    assert (await detail(client, event_id, fans[1]))["my_rsvp"]["status"] == "confirmed"
    retry = await client.post(f"/v1/events/{event_id}/rsvp", json={"status": "going"}, headers=fans[0].headers)
    assert retry.status_code == 403
    assert retry.json()["code"] == "rsvp_rejected"
    # Another event's RSVP id is not found here.
    other_event = await create_event(client, organizer)
    other = await rsvp(client, other_event, fans[3])
    cross = await client.post(f"/v1/events/{event_id}/attendees/{other['rsvp_id']}/approve", headers=organizer.headers)
    assert cross.status_code == 404


async def test_tickets_qr_checkin_staff_and_csv(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=10)
    other_event = await create_event(client, organizer)
    guest, staff, nobody = await make_account(display_name="=cmd()"), await make_account(), await make_account()

    assert (await client.get(f"/v1/events/{event_id}/tickets/mine/qr.svg", headers=guest.headers)).status_code == 404
    await rsvp(client, event_id, guest, guests=2)
    code = (await detail(client, event_id, guest))["my_rsvp"]["ticket_code"]
    assert len(code) >= 32
    qr = await client.get(f"/v1/events/{event_id}/tickets/mine/qr.svg", headers=guest.headers)
    assert qr.status_code == 200
    assert qr.headers["content-type"].startswith("image/svg+xml")
    assert qr.text.lstrip().startswith("<?xml") or "<svg" in qr.text[:200]

    denied = await client.post(f"/v1/events/{event_id}/checkin", json={"ticket_code": code}, headers=staff.headers)
    assert denied.status_code == 403
    added = await client.post(f"/v1/events/{event_id}/staff", json={"user_id": staff.id}, headers=organizer.headers)
    assert added.status_code == 200
    assert added.json() == {"user_id": staff.id, "role": "checkin_staff"}
    not_yours = await client.post(f"/v1/events/{event_id}/staff", json={"user_id": nobody.id}, headers=staff.headers)
    assert not_yours.status_code == 403
    bad_user = await client.post(f"/v1/events/{event_id}/staff", json={"user_id": "x"}, headers=organizer.headers)
    assert bad_user.status_code == 422

    wrong_event = await client.post(
        f"/v1/events/{other_event}/checkin", json={"ticket_code": code}, headers=organizer.headers
    )
    assert wrong_event.status_code == 404
    assert wrong_event.json()["code"] == "ticket_not_found"
    done = await client.post(f"/v1/events/{event_id}/checkin", json={"ticket_code": code}, headers=staff.headers)
    assert done.status_code == 200, done.text
    assert done.json()["attendee"]["user_id"] == guest.id
    assert done.json()["attendee"]["guest_count"] == 2
    used = await client.post(f"/v1/events/{event_id}/checkin", json={"ticket_code": code}, headers=organizer.headers)
    assert used.status_code == 409
    assert used.json()["code"] == "already_checked_in"
    assert await outbox_events(db, "event.checked_in", user_id=uuid_of(ids.Prefix.USER, guest.id))

    assert (await client.get(f"/v1/events/{event_id}/attendees.csv", headers=staff.headers)).status_code == 403
    exported = await client.get(f"/v1/events/{event_id}/attendees.csv", headers=organizer.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["user_id"], r["email"], r["status"], r["guest_count"]) for r in rows] == [
        (guest.id, guest.email, "confirmed", "2")
    ]
    assert rows[0]["display_name"] == "'=cmd()"
    assert rows[0]["checked_in_at"]
