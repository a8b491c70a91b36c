"""Paid tickets against localstripe over HTTP: holds, declines, refunds, offers, earnings, payouts, pay at venue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.events.models import Event, Rsvp
from shared.domain.payments.models import LedgerEntry
from shared.domain.payments.ticket_models import Payout, TicketPayment, TicketRefund
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import bulk_accounts, create_event, make_organizer, soon
from tests.api.payment_support import (
    CHARGE_DECLINED_CARD,
    GOOD_CARD,
    MakeCard,
    deliver,
    ledger_legs,
    stripe_client,
    stripe_event,
)
from tests.api.worker_support import run_startup_crons

PRICE = 1500


def paid(capacity: int = 5, provider: str = "stripe", refund_hours: int = 24, **fields: Any) -> dict[str, Any]:
    """Event fields for a paid event."""
    ticketing = {
        "type": "paid",
        "price_cents": PRICE,
        "currency": "USD",
        "payment_provider": provider,
        "refund_until_hours": refund_hours,
    }
    return {"capacity": capacity, "ticketing": ticketing, **fields}


async def buy(
    client: httpx.AsyncClient,
    event_id: str,
    user: Account,
    pm: str | None,
    guests: int = 0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """RSVP going with a card."""
    body: dict[str, Any] = {"status": "going", "guest_count": guests}
    if pm is not None:
        body["payment_method_id"] = pm
    return await client.post(f"/v1/events/{event_id}/rsvp", json=body, headers={**user.headers, **(headers or {})})


async def answer(client: httpx.AsyncClient, event_id: str, user: Account, status: str) -> dict[str, Any]:
    response = await client.post(f"/v1/events/{event_id}/rsvp", json={"status": status}, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def seats_taken(db: async_sessionmaker[AsyncSession], event_id: str) -> int:
    async with db() as session:
        value = await session.scalar(
            select(Event.seats_taken).where(Event.id == ids.decode(ids.Prefix.EVENT, event_id))
        )
    assert value is not None
    return value


async def payments_of(db: async_sessionmaker[AsyncSession], event_id: str) -> list[TicketPayment]:
    async with db() as session:
        return list(
            await session.scalars(
                select(TicketPayment)
                .where(TicketPayment.event_id == ids.decode(ids.Prefix.EVENT, event_id))
                .order_by(TicketPayment.id)
            )
        )


async def rsvp_status(db: async_sessionmaker[AsyncSession], event_id: str, user: Account) -> str | None:
    async with db() as session:
        return await session.scalar(
            select(Rsvp.status).where(
                Rsvp.event_id == ids.decode(ids.Prefix.EVENT, event_id),
                Rsvp.user_id == ids.decode(ids.Prefix.USER, user.id),
            )
        )


async def earnings(client: httpx.AsyncClient, user: Account) -> dict[str, Any]:
    response = await client.get("/v1/earnings", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_paid_rsvp_charges_confirms_and_books_the_ledger(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fan = await make_account()

    response = await buy(client, event_id, fan, await make_card(GOOD_CARD), guests=1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["ticket"]["status"] == "succeeded"
    assert body["ticket"]["amount_cents"] == 2 * PRICE
    assert body["ticket"]["seats"] == 2
    assert await seats_taken(db, event_id) == 2

    shown = (await client.get(f"/v1/events/{event_id}", headers=fan.headers)).json()
    assert shown["ticketing"]["payment_provider"] == "stripe"
    assert shown["my_rsvp"]["status"] == "confirmed"

    [payment] = await payments_of(db, event_id)
    assert payment.stripe_payment_intent_id is not None
    assert payment.fee_cents == 2 * PRICE * 500 // 10_000
    legs = await ledger_legs(db, f"ticket:{payment.id}")
    assert sum(leg.amount_cents for leg in legs) == 0
    assert {(leg.kind, leg.account, leg.amount_cents) for leg in legs} == {
        ("charge", "customer", -2 * PRICE),
        ("charge", "organizer", 2 * PRICE),
        ("fee", "organizer", -150),
        ("fee", "platform_revenue", 150),
    }
    history = (await client.get("/v1/payments", headers=fan.headers)).json()["items"]
    assert [(h["kind"], h["amount_cents"]) for h in history] == [("charge", 2 * PRICE)]

    mine = await earnings(client, organizer)
    assert (mine["gross_cents"], mine["fee_cents"], mine["refund_cents"], mine["net_cents"]) == (3000, 150, 0, 2850)
    assert mine["events"][0]["event_id"] == event_id
    assert mine["events"][0]["tickets_sold"] == 1

    again = await buy(client, event_id, fan, await make_card(GOOD_CARD))
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "ticket_already_bought"
    assert len(await payments_of(db, event_id)) == 1


async def test_declined_card_is_402_and_releases_the_hold(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    fan = await make_account()

    declined = await buy(client, event_id, fan, await make_card(CHARGE_DECLINED_CARD))
    assert declined.status_code == 402, declined.text
    assert declined.headers["content-type"].startswith("application/problem+json")
    assert declined.json()["code"] == "payment_failed"
    assert "declined" in declined.json()["detail"].lower()
    assert await seats_taken(db, event_id) == 0
    assert await rsvp_status(db, event_id, fan) == "cancelled"
    [failed] = await payments_of(db, event_id)
    assert failed.status == "failed"
    assert await ledger_legs(db, f"ticket:{failed.id}") == []

    # The seat is free again: someone else (or the same fan with another card) can buy it.
    retry = await buy(client, event_id, fan, await make_card(GOOD_CARD))
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "confirmed"
    assert await seats_taken(db, event_id) == 1


async def test_bad_input_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fan = await make_account()

    missing = await buy(client, event_id, fan, None)
    assert missing.status_code == 422, missing.text
    assert missing.json()["code"] == "payment_method_required"
    unknown = await buy(client, event_id, fan, "pm_doesnotexist")
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["code"] == "invalid_payment_method"
    bad_body = await client.post(
        f"/v1/events/{event_id}/rsvp",
        json={"status": "going", "guest_count": 9, "payment_method_id": "pm_x"},
        headers=fan.headers,
    )
    assert bad_body.status_code in (400, 422), bad_body.text
    assert await seats_taken(db, event_id) == 0
    assert all(p.status == "failed" for p in await payments_of(db, event_id))
    assert await rsvp_status(db, event_id, fan) in (None, "cancelled")

    bad_ticketing = await client.post(
        "/v1/events",
        json={
            "title": "Bad",
            "start_time": soon().isoformat(),
            "end_time": (soon() + timedelta(hours=1)).isoformat(),
            "location": {"name": "x", "latitude": 1, "longitude": 1},
            "ticketing": {"type": "paid", "price_cents": 100, "payment_provider": "cash"},
        },
        headers=organizer.headers,
    )
    assert bad_ticketing.status_code in (400, 422), bad_ticketing.text

    for path in (
        "/v1/payments/tpay_nope/refund",
        f"/v1/payments/{ids.encode(ids.Prefix.TICKET_PAYMENT, uuid.uuid4())}/refund",
    ):
        response = await client.post(path, headers=organizer.headers)
        assert response.status_code == 404, response.text


async def test_idempotency_key_replays_a_paid_rsvp(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fan = await make_account()
    pm = await make_card(GOOD_CARD)
    key = {"Idempotency-Key": f"rsvp-{uuid.uuid4().hex}"}

    first = await buy(client, event_id, fan, pm, headers=key)
    assert first.status_code == 200, first.text
    replay = await buy(client, event_id, fan, pm, headers=key)
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    mismatch = await buy(client, event_id, fan, pm, guests=2, headers=key)
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["code"] == "idempotency_key_mismatch"
    assert len(await payments_of(db, event_id)) == 1


async def test_concurrent_paid_rsvps_never_sell_more_than_capacity(
    client: httpx.AsyncClient,
    make_card: MakeCard,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=10))
    fans = await bulk_accounts(db, engine_env, 50)
    cards = [await make_card(GOOD_CARD) for _ in fans]

    responses = await asyncio.gather(*(buy(client, event_id, fan, pm) for fan, pm in zip(fans, cards, strict=True)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("confirmed") == 10
    assert statuses.count("waitlisted") == 40
    assert await seats_taken(db, event_id) == 10
    payments = await payments_of(db, event_id)
    assert [p.status for p in payments] == ["succeeded"] * 10
    positions = sorted(r.json()["waitlist_position"] for r in responses if r.json()["status"] == "waitlisted")
    assert positions == list(range(1, 41))


async def test_attendee_refund_policy_and_offer_handover(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    first, second, third = await make_account(), await make_account(), await make_account()
    assert (await buy(client, event_id, first, await make_card(GOOD_CARD))).json()["status"] == "confirmed"
    for fan in (second, third):
        waiting = await buy(client, event_id, fan, await make_card(GOOD_CARD))
        assert waiting.json()["status"] == "waitlisted", waiting.text
    assert len(await payments_of(db, event_id)) == 1  # nobody on the waitlist is charged

    # Cancelling three days ahead (policy: 24 h) refunds in full, and the seat is offered to the head.
    cancelled = await answer(client, event_id, first, "not_going")
    assert cancelled["status"] == "cancelled"
    assert cancelled["ticket"]["status"] == "refunded"
    assert cancelled["ticket"]["refunded_cents"] == PRICE
    [payment] = await payments_of(db, event_id)
    assert sum(leg.amount_cents for leg in await ledger_legs(db, f"ticket:{payment.id}")) == 0
    assert await rsvp_status(db, event_id, second) == "offered"
    assert await seats_taken(db, event_id) == 1
    offers = (await client.get("/v1/notifications", params={"limit": 100}, headers=second.headers)).json()["items"]
    assert any(n["type"] == "ticket_offered" for n in offers)

    # The offer lapses: a sweep before its expiry changes nothing, after it the third fan gets the seat.
    offer_seconds = load_settings(engine_env).ticket_offer_seconds
    now = datetime.now(UTC)
    await run_startup_crons(engine_env, now + timedelta(seconds=offer_seconds - 120))
    assert await rsvp_status(db, event_id, second) == "offered"
    await run_startup_crons(engine_env, now + timedelta(seconds=offer_seconds + 60))
    assert await rsvp_status(db, event_id, second) == "cancelled"
    assert await rsvp_status(db, event_id, third) == "offered"
    assert await seats_taken(db, event_id) == 1

    bought = await buy(client, event_id, third, await make_card(GOOD_CARD))
    assert bought.status_code == 200, bought.text
    assert bought.json()["status"] == "confirmed"
    assert bought.json()["ticket"]["status"] == "succeeded"
    assert await seats_taken(db, event_id) == 1


async def test_cancelling_after_the_refund_deadline_keeps_the_money(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(refund_hours=24 * 7))
    fan = await make_account()
    assert (await buy(client, event_id, fan, await make_card(GOOD_CARD))).status_code == 200
    cancelled = await answer(client, event_id, fan, "not_going")
    assert cancelled["ticket"]["status"] == "succeeded"
    assert (await earnings(client, organizer))["net_cents"] == PRICE - 75


async def pending_hold(
    db: async_sessionmaker[AsyncSession], event_id: str, buyer: Account, hold_until: datetime | None = None
) -> uuid.UUID:
    """A held seat and its pending payment, as an API process that died right after charging the card leaves them."""
    event_uuid = ids.decode(ids.Prefix.EVENT, event_id)
    async with db.begin() as session:
        event = await session.get(Event, event_uuid)
        assert event is not None
        rsvp = Rsvp(
            id=ids.uuid7(),
            event_id=event_uuid,
            user_id=ids.decode(ids.Prefix.USER, buyer.id),
            status="held",
            guest_count=0,
            hold_expires_at=hold_until or datetime.now(UTC) + timedelta(minutes=5),
            seat_price_cents=PRICE,
        )
        session.add(rsvp)
        event.seats_taken += 1
        await session.flush()
        payment = TicketPayment(
            id=ids.uuid7(),
            event_id=event_uuid,
            rsvp_id=rsvp.id,
            user_id=rsvp.user_id,
            organizer_id=event.organizer_id,
            provider="stripe",
            status="pending",
            seats=1,
            amount_cents=PRICE,
            currency="usd",
            fee_cents=75,
            idempotency_key=f"ticket-{uuid.uuid4()}",
        )
        session.add(payment)
    return payment.id


async def test_held_seats_expire_with_the_clock(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    buyer, waiting = await make_account(), await make_account()
    # As an API process that died before reaching Stripe leaves it: the seat held, the payment pending.
    hold_until = datetime.now(UTC) + timedelta(seconds=load_settings(engine_env).ticket_hold_seconds)
    await pending_hold(db, event_id, buyer, hold_until)
    # The held seat counts against capacity: the next buyer waits and is not charged.
    assert (await buy(client, event_id, waiting, await make_card(GOOD_CARD))).json()["status"] == "waitlisted"

    await run_startup_crons(engine_env, hold_until - timedelta(seconds=30))
    assert await rsvp_status(db, event_id, buyer) == "held"
    await run_startup_crons(engine_env, hold_until + timedelta(seconds=1))
    assert await rsvp_status(db, event_id, buyer) == "cancelled"
    assert await rsvp_status(db, event_id, waiting) == "offered"
    assert await seats_taken(db, event_id) == 1
    [swept] = await payments_of(db, event_id)
    assert swept.status == "failed"


async def wait_for_refunds(db: async_sessionmaker[AsyncSession], event_id: str, count: int) -> list[TicketPayment]:
    """The event's payments once ``count`` of them are refunded (up to 30 s)."""
    async with asyncio.timeout(30):
        while True:
            payments = await payments_of(db, event_id)
            if sum(p.status == "refunded" for p in payments) >= count:
                return payments
            await asyncio.sleep(0.2)


async def test_organizer_cancellation_refunds_every_ticket_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    worker: None,
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fans = [await make_account() for _ in range(3)]
    for fan in fans:
        assert (await buy(client, event_id, fan, await make_card(GOOD_CARD))).status_code == 200
    assert (await client.post(f"/v1/events/{event_id}/cancel", headers=organizer.headers)).status_code == 200

    # The real worker relays event.cancelled to refund_event_tickets (and its sweep would catch up too).
    payments = await wait_for_refunds(db, event_id, 3)
    assert [p.status for p in payments] == ["refunded"] * 3
    await asyncio.sleep(1)  # localstripe's charge.refunded webhooks arrive; they must not book again
    legs = [await ledger_legs(db, f"ticket:{p.id}") for p in payments]
    assert [len(x) for x in legs] == [8, 8, 8]
    assert all(sum(leg.amount_cents for leg in each) == 0 for each in legs)
    for each in legs:
        assert sum(leg.amount_cents for leg in each if leg.account == "organizer") == 0
    mine = await earnings(client, organizer)
    assert mine["gross_cents"] == mine["refund_cents"] == 3 * PRICE
    assert mine["net_cents"] == 0


async def test_organizer_refund_endpoint(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    other_organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    fan, waiting = await make_account(), await make_account()
    ticket = (await buy(client, event_id, fan, await make_card(GOOD_CARD))).json()["ticket"]
    assert (await buy(client, event_id, waiting, await make_card(GOOD_CARD))).json()["status"] == "waitlisted"
    path = f"/v1/payments/{ticket['payment_id']}/refund"

    for stranger in (fan, other_organizer):
        refused = await client.post(path, headers=stranger.headers)
        assert refused.status_code == 404, refused.text
    assert [p.status for p in await payments_of(db, event_id)] == ["succeeded"]

    refunded = await client.post(path, headers=organizer.headers)
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert await rsvp_status(db, event_id, fan) == "cancelled"
    assert await rsvp_status(db, event_id, waiting) == "offered"
    again = await client.post(path, headers=organizer.headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "not_refundable"


async def test_payouts_never_exceed_the_available_net(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    for _ in range(2):
        assert (await buy(client, event_id, await make_account(), await make_card(GOOD_CARD))).status_code == 200
    net = 2 * (PRICE - 75)
    assert (await earnings(client, organizer))["available_cents"] == net

    # No payout before the organizer says where the money goes.
    unset = await client.post("/v1/payouts", json={"amount_cents": 100}, headers=organizer.headers)
    assert unset.status_code == 409, unset.text
    assert unset.json()["code"] == "payout_account_required"
    account = {"holder_name": "Ada Organizer", "destination": "DE89 3704 0044 0532 0130 00"}
    assert (await client.put("/v1/payouts/account", json=account, headers=organizer.headers)).status_code == 200

    too_much = await client.post("/v1/payouts", json={"amount_cents": net + 1}, headers=organizer.headers)
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["code"] == "insufficient_balance"
    zero = await client.post("/v1/payouts", json={"amount_cents": 0}, headers=organizer.headers)
    assert zero.status_code in (400, 422), zero.text

    # Five requests for the whole balance at once: exactly one is paid.
    racing = await asyncio.gather(
        *(client.post("/v1/payouts", json={"amount_cents": net}, headers=organizer.headers) for _ in range(5))
    )
    assert sorted(r.status_code for r in racing) == [201, 409, 409, 409, 409]
    created = next(r.json() for r in racing if r.status_code == 201)
    assert created["status"] == "paid"
    assert created["provider"] == "manual"
    assert created["destination_last4"] == "3000"
    assert created["payout_id"].startswith("po_")
    async with db() as session:
        total = await session.scalar(
            select(func.sum(Payout.amount_cents)).where(
                Payout.organizer_id == ids.decode(ids.Prefix.USER, organizer.id)
            )
        )
    assert total == net
    listed = (await client.get("/v1/payouts", headers=organizer.headers)).json()
    assert [p["payout_id"] for p in listed["items"]] == [created["payout_id"]]
    mine = await earnings(client, organizer)
    assert (mine["paid_out_cents"], mine["available_cents"]) == (net, 0)
    empty = await client.post("/v1/payouts", json={}, headers=organizer.headers)
    assert empty.status_code == 409, empty.text
    assert empty.json()["code"] == "nothing_to_pay_out"

    stranger = await make_account()
    assert (await client.get("/v1/payouts", headers=stranger.headers)).json()["items"] == []
    theirs = await earnings(client, stranger)
    assert (theirs["gross_cents"], theirs["events"]) == (0, [])


async def test_pay_at_venue_tickets_are_unpaid_until_marked(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(provider="pay_at_venue"))
    card_event = await create_event(client, organizer, **paid())
    fan, stranger = await make_account(), await make_account()

    going = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 1}, headers=fan.headers
    )
    assert going.status_code == 200, going.text
    assert going.json()["status"] == "confirmed"
    assert going.json()["ticket"]["status"] == "unpaid"
    assert going.json()["ticket"]["provider"] == "pay_at_venue"
    assert going.json()["ticket"]["amount_cents"] == 2 * PRICE

    mark = f"/v1/events/{event_id}/attendees/{fan.id}/mark-paid"
    refused = await client.post(mark, headers=stranger.headers)
    assert refused.status_code == 403, refused.text
    assert (
        await client.post(f"/v1/events/{event_id}/attendees/usr_nope/mark-paid", headers=organizer.headers)
    ).status_code == 404
    assert (
        await client.post(f"/v1/events/{event_id}/attendees/{stranger.id}/mark-paid", headers=organizer.headers)
    ).status_code == 404
    not_venue = await client.post(f"/v1/events/{card_event}/attendees/{fan.id}/mark-paid", headers=organizer.headers)
    assert not_venue.status_code == 409, not_venue.text

    # A price change does not reach a booked ticket: fewer guests pay the price it was booked at.
    assert (
        await patch_ticketing(client, event_id, organizer, price_cents=2000, payment_provider="pay_at_venue")
    ).status_code == 200
    fewer = await client.post(
        f"/v1/events/{event_id}/rsvp", json={"status": "going", "guest_count": 0}, headers=fan.headers
    )
    assert fewer.status_code == 200, fewer.text
    assert (fewer.json()["ticket"]["amount_cents"], fewer.json()["ticket"]["seats"]) == (PRICE, 1)

    marked = await client.post(mark, headers=organizer.headers)
    assert marked.status_code == 200, marked.text
    assert marked.json()["status"] == "paid"
    rsvp_id = going.json()["rsvp_id"]
    again = await client.post(f"/v1/events/{event_id}/attendees/{rsvp_id}/mark-paid", headers=organizer.headers)
    assert again.json()["payment_id"] == marked.json()["payment_id"]
    assert len(await payments_of(db, event_id)) == 1
    mine = await earnings(client, organizer)
    # Cash collected at the door is shown but is not the platform's to pay out.
    assert (mine["collected_at_venue_cents"], mine["net_cents"]) == (PRICE, 0)


async def test_approval_gated_paid_event_charges_only_after_approval(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(requires_approval=True))
    fan = await make_account()
    pending = await buy(client, event_id, fan, await make_card(GOOD_CARD))
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "pending_approval"
    assert await payments_of(db, event_id) == []

    approved = await client.post(
        f"/v1/events/{event_id}/attendees/{pending.json()['rsvp_id']}/approve", headers=organizer.headers
    )
    assert approved.status_code == 200, approved.text
    assert await rsvp_status(db, event_id, fan) == "offered"
    bought = await buy(client, event_id, fan, await make_card(GOOD_CARD))
    assert bought.status_code == 200, bought.text
    assert bought.json()["status"] == "confirmed"
    assert bought.json()["ticket"]["status"] == "succeeded"


# ---- webhooks out of order ----------------------------------------------------------------------


async def payment_row(db: async_sessionmaker[AsyncSession], payment_id: uuid.UUID) -> TicketPayment:
    async with db() as session:
        payment = await session.get(TicketPayment, payment_id)
    assert payment is not None
    return payment


async def ledger_snapshot(db: async_sessionmaker[AsyncSession], payment_id: uuid.UUID) -> list[tuple[str, str, int]]:
    return sorted((leg.kind, leg.account, leg.amount_cents) for leg in await ledger_legs(db, f"ticket:{payment_id}"))


async def test_refund_webhook_before_success_webhook_settles_on_stripes_truth(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
    webhook_secret: str,
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    buyer = await make_account()
    payment_id = await pending_hold(db, event_id, buyer)

    # The card was charged and, before Tribe heard of it, refunded in Stripe's dashboard.
    async with stripe_client(engine_env) as stripe:
        created = await stripe.post(
            "/v1/payment_intents",
            data={
                "amount": str(PRICE),
                "currency": "usd",
                "payment_method": await make_card(GOOD_CARD),
                "confirm": "true",
                "metadata[ticket_payment_id]": str(payment_id),
            },
        )
        assert created.status_code == 200, created.text
        intent = created.json()
        assert intent["status"] == "succeeded"
        refunded = await stripe.post("/v1/refunds", data={"payment_intent": intent["id"]})
        assert refunded.status_code == 200, refunded.text
        charge = (await stripe.get(f"/v1/charges/{intent['latest_charge']['id']}")).json()
    assert charge["amount_refunded"] == PRICE

    now = int(datetime.now(UTC).timestamp())
    refund_event = stripe_event("charge.refunded", charge, now + 10)
    # The success event is older and carries the intent as it was then: paid, nothing refunded.
    success_event = stripe_event("payment_intent.succeeded", intent, now)
    first = await deliver(client, refund_event, webhook_secret)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "duplicate": False}

    payment = await payment_row(db, payment_id)
    assert (payment.status, payment.refunded_cents, payment.fee_refunded_cents) == ("refunded", PRICE, 75)
    assert payment.stripe_payment_intent_id == intent["id"]
    assert await rsvp_status(db, event_id, buyer) == "cancelled"
    assert await seats_taken(db, event_id) == 0
    booked = await ledger_snapshot(db, payment_id)
    assert booked == sorted(
        [
            ("charge", "customer", -PRICE),
            ("charge", "organizer", PRICE),
            ("fee", "organizer", -75),
            ("fee", "platform_revenue", 75),
            ("refund", "customer", PRICE),
            ("refund", "organizer", -PRICE),
            ("fee", "organizer", 75),
            ("fee", "platform_revenue", -75),
        ]
    )
    async with db() as session:
        # Not mistaken for a subscription refund (the ticket did not know its PaymentIntent yet).
        stray = await session.scalar(select(func.count()).where(LedgerEntry.source_ref.like(f"{charge['id']}%")))
    assert stray == 0

    # The late success changes nothing: Stripe says the money went back.
    late = await deliver(client, success_event, webhook_secret)
    assert late.status_code == 200, late.text
    assert late.json()["duplicate"] is False
    for payload in (refund_event, success_event):
        again = await deliver(client, payload, webhook_secret)
        assert again.json() == {"received": True, "duplicate": True}
    assert (await payment_row(db, payment_id)).status == "refunded"
    assert await ledger_snapshot(db, payment_id) == booked
    assert await rsvp_status(db, event_id, buyer) == "cancelled"
    assert await seats_taken(db, event_id) == 0
    mine = await earnings(client, organizer)
    assert (mine["gross_cents"], mine["fee_cents"], mine["refund_cents"], mine["net_cents"]) == (PRICE, 0, PRICE, 0)


async def test_stale_failure_after_success_does_not_regress_the_ticket(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
    webhook_secret: str,
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    fan, waiting = await make_account(), await make_account()
    assert (await buy(client, event_id, fan, await make_card(GOOD_CARD))).json()["status"] == "confirmed"
    assert (await buy(client, event_id, waiting, await make_card(GOOD_CARD))).json()["status"] == "waitlisted"
    [payment] = await payments_of(db, event_id)
    booked = await ledger_snapshot(db, payment.id)

    # A failure from an earlier attempt on this intent, delivered after the success.
    stale = {
        "id": payment.stripe_payment_intent_id,
        "object": "payment_intent",
        "status": "requires_payment_method",
        "amount": PRICE,
        "currency": "usd",
        "metadata": {"ticket_payment_id": str(payment.id)},
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
    }
    payload = stripe_event("payment_intent.payment_failed", stale, int(datetime.now(UTC).timestamp()) + 50)
    assert (await deliver(client, payload, webhook_secret)).json() == {"received": True, "duplicate": False}
    assert (await deliver(client, payload, webhook_secret)).json() == {"received": True, "duplicate": True}

    assert (await payment_row(db, payment.id)).status == "succeeded"
    assert await rsvp_status(db, event_id, fan) == "confirmed"
    assert await rsvp_status(db, event_id, waiting) == "waitlisted"
    assert await seats_taken(db, event_id) == 1
    assert await ledger_snapshot(db, payment.id) == booked


# ---- partial refunds ----------------------------------------------------------------------------


async def refund(
    client: httpx.AsyncClient, payment_id: str, user: Account, amount: int | None = None, key: str | None = None
) -> httpx.Response:
    body = {} if amount is None else {"amount_cents": amount}
    headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
    return await client.post(f"/v1/payments/{payment_id}/refund", json=body, headers=headers)


async def test_partial_refunds_keep_the_ticket_until_the_charge_is_refunded(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    stranger_organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=2))
    fan = await make_account()
    ticket = (await buy(client, event_id, fan, await make_card(GOOD_CARD), guests=1)).json()["ticket"]
    assert (ticket["amount_cents"], ticket["seats"]) == (2 * PRICE, 2)
    [payment] = await payments_of(db, event_id)
    assert payment.fee_cents == 150

    for someone in (fan, stranger_organizer):
        assert (await refund(client, ticket["payment_id"], someone, 100)).status_code == 404
    for bad in ({"amount_cents": 0}, {"amount_cents": -5}, {"amount_cents": 10, "reason": "x"}):
        response = await client.post(f"/v1/payments/{ticket['payment_id']}/refund", json=bad, headers=organizer.headers)
        assert response.status_code == 422, response.text

    key = f"refund-{uuid.uuid4().hex}"
    first = await refund(client, ticket["payment_id"], organizer, 1000, key=key)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["refunded_cents"]) == ("succeeded", 1000)
    replay = await refund(client, ticket["payment_id"], organizer, 1000, key=key)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    # A partial refund keeps the ticket and its seats.
    assert await rsvp_status(db, event_id, fan) == "confirmed"
    assert await seats_taken(db, event_id) == 2
    # The fee goes back in proportion: 150 * 1000 / 3000.
    mine = await earnings(client, organizer)
    assert (mine["gross_cents"], mine["fee_cents"], mine["refund_cents"], mine["net_cents"]) == (3000, 100, 1000, 1900)

    before = await ledger_snapshot(db, payment.id)
    too_much = await refund(client, ticket["payment_id"], organizer, 2001)
    assert too_much.status_code == 422, too_much.text
    assert too_much.headers["content-type"].startswith("application/problem+json")
    assert too_much.json()["code"] == "refund_exceeds_charge"
    assert "2000" in too_much.json()["detail"]
    assert (await payment_row(db, payment.id)).refunded_cents == 1000
    assert await ledger_snapshot(db, payment.id) == before

    second = await refund(client, ticket["payment_id"], organizer, 999)
    assert second.json()["refunded_cents"] == 1999
    # Cumulative: floor(150 * 1999 / 3000) = 99 given back so far, so this one returns 49.
    assert (await payment_row(db, payment.id)).fee_refunded_cents == 99
    rest = await refund(client, ticket["payment_id"], organizer)
    assert rest.status_code == 200, rest.text
    assert (rest.json()["status"], rest.json()["refunded_cents"]) == ("refunded", 2 * PRICE)
    assert await rsvp_status(db, event_id, fan) == "cancelled"
    assert await seats_taken(db, event_id) == 0
    again = await refund(client, ticket["payment_id"], organizer, 1)
    assert again.status_code == 409, again.text

    async with db() as session:
        refunds = list(
            await session.scalars(
                select(TicketRefund).where(TicketRefund.payment_id == payment.id).order_by(TicketRefund.id)
            )
        )
    assert [(r.amount_cents, r.fee_cents, r.status) for r in refunds] == [
        (1000, 50, "succeeded"),
        (999, 49, "succeeded"),
        (1001, 51, "succeeded"),
    ]
    assert len({r.idempotency_key for r in refunds}) == 3
    async with stripe_client(engine_env) as stripe:
        remote = (await stripe.get("/v1/refunds", params={"payment_intent": payment.stripe_payment_intent_id})).json()
    assert sorted(r["amount"] for r in remote["data"]) == [999, 1000, 1001]
    assert {r.stripe_refund_id for r in refunds} == {r["id"] for r in remote["data"]}

    legs = await ledger_legs(db, f"ticket:{payment.id}")
    assert sum(leg.amount_cents for leg in legs) == 0
    assert sum(leg.amount_cents for leg in legs if leg.account == "organizer") == 0
    assert sum(leg.amount_cents for leg in legs if leg.account == "platform_revenue") == 0
    async with db() as session:
        unbalanced = (
            await session.execute(
                select(LedgerEntry.transaction_id)
                .where(LedgerEntry.source_ref.like(f"ticket:{payment.id}%"))
                .group_by(LedgerEntry.transaction_id)
                .having(func.sum(LedgerEntry.amount_cents) != 0)
            )
        ).all()
    assert unbalanced == []
    mine = await earnings(client, organizer)
    assert (mine["gross_cents"], mine["fee_cents"], mine["refund_cents"], mine["net_cents"]) == (3000, 0, 3000, 0)
    history = (await client.get("/v1/payments", headers=fan.headers)).json()["items"]
    assert sorted(h["amount_cents"] for h in history) == [-1001, -1000, -999, 2 * PRICE]


async def test_concurrent_partial_refunds_never_exceed_the_charge(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fan = await make_account()
    ticket = (await buy(client, event_id, fan, await make_card(GOOD_CARD))).json()["ticket"]

    racing = await asyncio.gather(*(refund(client, ticket["payment_id"], organizer, 400) for _ in range(10)))
    assert sorted(r.status_code for r in racing) == [200] * 3 + [422] * 7, [r.text for r in racing]
    assert all(r.json()["code"] == "refund_exceeds_charge" for r in racing if r.status_code == 422)
    [payment] = await payments_of(db, event_id)
    assert (payment.status, payment.refunded_cents) == ("succeeded", 1200)
    assert await rsvp_status(db, event_id, fan) == "confirmed"
    async with stripe_client(engine_env) as stripe:
        remote = (await stripe.get("/v1/refunds", params={"payment_intent": payment.stripe_payment_intent_id})).json()
    assert [r["amount"] for r in remote["data"]] == [400, 400, 400]
    assert sum(leg.amount_cents for leg in await ledger_legs(db, f"ticket:{payment.id}")) == 0

    # The database refuses more than the charge even to a writer that skips the service's check.
    async with db() as session:
        with pytest.raises(IntegrityError, match="refund_within"):
            await session.execute(
                update(TicketPayment)
                .where(TicketPayment.id == payment.id)
                .values(refunded_cents=TicketPayment.refunded_cents + 400)
            )
    assert (await payment_row(db, payment.id)).refunded_cents == 1200


# ---- price changes ------------------------------------------------------------------------------


async def patch_ticketing(
    client: httpx.AsyncClient, event_id: str, organizer: Account, **ticketing: Any
) -> httpx.Response:
    body = {"type": "paid", "price_cents": PRICE, "currency": "USD", "payment_provider": "stripe", **ticketing}
    return await client.patch(f"/v1/events/{event_id}", json={"ticketing": body}, headers=organizer.headers)


async def test_price_changes_reach_later_buyers_only_and_currency_locks_once_sold(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid(capacity=1))
    first, second, late = await make_account(), await make_account(), await make_account()

    # Nothing sold yet: anything goes.
    assert (await patch_ticketing(client, event_id, organizer, currency="EUR")).status_code == 200
    assert (await patch_ticketing(client, event_id, organizer, currency="USD")).status_code == 200

    assert (await buy(client, event_id, first, await make_card(GOOD_CARD))).json()["ticket"]["amount_cents"] == PRICE
    assert (await buy(client, event_id, second, await make_card(GOOD_CARD))).json()["status"] == "waitlisted"

    for change, code in (
        ({"currency": "EUR"}, "currency_locked"),
        ({"type": "free", "price_cents": 0}, "paid_tickets_outstanding"),
        ({"payment_provider": "pay_at_venue"}, "paid_tickets_outstanding"),
    ):
        refused = await patch_ticketing(client, event_id, organizer, **change)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == code
    shown = (await client.get(f"/v1/events/{event_id}", headers=organizer.headers)).json()["ticketing"]
    assert (shown["type"], shown["price_cents"], shown["currency"], shown["payment_provider"]) == (
        "paid",
        PRICE,
        "USD",
        "stripe",
    )

    # The seat freed by a refund is offered at today's price; a rise after the offer does not reach it.
    assert (await answer(client, event_id, first, "not_going"))["ticket"]["status"] == "refunded"
    assert await rsvp_status(db, event_id, second) == "offered"
    raised = await patch_ticketing(client, event_id, organizer, price_cents=2500)
    assert raised.status_code == 200, raised.text
    assert raised.json()["ticketing"]["price_cents"] == 2500
    offered = await buy(client, event_id, second, await make_card(GOOD_CARD))
    assert offered.status_code == 200, offered.text
    assert (offered.json()["status"], offered.json()["ticket"]["amount_cents"]) == ("confirmed", PRICE)

    # Later buyers pay the new price; what was paid before stays as it was.
    bigger = await create_event(client, organizer, **paid(capacity=3))
    assert (await buy(client, bigger, late, await make_card(GOOD_CARD))).json()["ticket"]["amount_cents"] == PRICE
    assert (await patch_ticketing(client, bigger, organizer, price_cents=2000)).status_code == 200
    newcomer = await buy(client, bigger, await make_account(), await make_card(GOOD_CARD))
    assert newcomer.json()["ticket"]["amount_cents"] == 2000
    assert sorted(p.amount_cents for p in await payments_of(db, bigger)) == [PRICE, 2000]

    # Once every ticket is refunded the event may turn free, but its currency stays.
    for payment in await payments_of(db, bigger):
        public = ids.encode(ids.Prefix.TICKET_PAYMENT, payment.id)
        assert (await refund(client, public, organizer)).status_code == 200
    assert (await patch_ticketing(client, bigger, organizer, currency="EUR")).json()["code"] == "currency_locked"
    free = await patch_ticketing(client, bigger, organizer, type="free", price_cents=0)
    assert free.status_code == 200, free.text
    assert free.json()["ticketing"]["type"] == "free"


# ---- payout accounts ----------------------------------------------------------------------------


async def test_payout_account_is_stored_checked_and_private(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer, other = await make_organizer(make_account, db), await make_account()
    path = "/v1/payouts/account"
    missing = await client.get(path, headers=organizer.headers)
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == "payout_account_not_found"

    for bad in (
        {"holder_name": "Ada", "destination": "!!!!!!"},
        {"holder_name": "Ada", "destination": "acct_123"},
        {"holder_name": "   ", "destination": "GB29NWBK60161331926819"},
        {"holder_name": "Ada"},
        {"holder_name": "Ada", "destination": "GB29NWBK60161331926819", "provider": "stripe_connect"},
    ):
        refused = await client.put(path, json=bad, headers=organizer.headers)
        assert refused.status_code == 422, refused.text
    assert (await client.get(path, headers=organizer.headers)).status_code == 404

    stored = await client.put(
        path,
        json={"holder_name": " Ada Organizer ", "destination": "gb29 nwbk 6016 1331 9268 19"},
        headers=organizer.headers,
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["provider"] == "manual"
    assert stored.json()["holder_name"] == "Ada Organizer"
    assert stored.json()["destination_last4"] == "6819"
    assert "GB29" not in stored.text
    replaced = await client.put(
        path, json={"holder_name": "Ada Organizer", "destination": "DE89370400440532013000"}, headers=organizer.headers
    )
    assert replaced.json()["destination_last4"] == "3000"
    assert (await client.get(path, headers=organizer.headers)).json()["destination_last4"] == "3000"
    # Each caller sees only their own.
    assert (await client.get(path, headers=other.headers)).status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_a_refund_left_pending_by_a_dead_process_is_finished_by_the_sweep(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, **paid())
    fan = await make_account()
    assert (await buy(client, event_id, fan, await make_card(GOOD_CARD))).status_code == 200
    [payment] = await payments_of(db, event_id)
    # Reserved, then the process died before Stripe answered: the amount stays reserved, nothing is booked.
    reserved_at = datetime.now(UTC)
    async with db.begin() as session:
        row = await session.get(TicketPayment, payment.id)
        assert row is not None
        row.refunded_cents += 500
        stuck = TicketRefund(
            id=ids.uuid7(),
            payment_id=payment.id,
            amount_cents=500,
            status="pending",
            reason="refunded by the organizer",
            idempotency_key=f"ticket-refund-{uuid.uuid4()}",
        )
        session.add(stuck)
    assert (await earnings(client, organizer))["refund_cents"] == 500
    # Only what is not reserved can be refunded meanwhile.
    public = ids.encode(ids.Prefix.TICKET_PAYMENT, payment.id)
    assert (await refund(client, public, organizer, PRICE - 499)).status_code == 422

    await run_startup_crons(engine_env, reserved_at + timedelta(minutes=5))
    async with db() as session:
        assert await session.scalar(select(TicketRefund.status).where(TicketRefund.id == stuck.id)) == "pending"
    await run_startup_crons(engine_env, reserved_at + timedelta(minutes=11))
    async with db() as session:
        done = await session.get(TicketRefund, stuck.id)
    assert done is not None
    assert (done.status, done.fee_cents) == ("succeeded", 75 * 500 // PRICE)
    assert done.stripe_refund_id is not None
    after = await payment_row(db, payment.id)
    assert (after.status, after.refunded_cents) == ("succeeded", 500)
    assert sum(leg.amount_cents for leg in await ledger_legs(db, f"ticket:{payment.id}")) == 0
    async with stripe_client(engine_env) as stripe:
        remote = (await stripe.get("/v1/refunds", params={"payment_intent": payment.stripe_payment_intent_id})).json()
    assert [r["amount"] for r in remote["data"]] == [500]
