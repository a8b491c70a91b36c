"""Plans, subscriptions, webhooks, Idempotency-Key and the ledger, against localstripe over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import OutboxRow
from shared.domain.payments.models import IdempotencyKey, LedgerEntry, Subscription, WebhookEvent
from tests.api.club_support import create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.payment_support import (
    DECLINED_CARD,
    GOOD_CARD,
    MakeCard,
    deliver,
    ledger_is_balanced,
    premium_tier,
    sign,
    stripe_client,
    stripe_event,
    stripe_subscription_id,
    subscribe,
)
from tests.api.posts.support import feed_ids, profile_post


async def subscription_events(db: async_sessionmaker[AsyncSession], account: Account) -> list[dict[str, Any]]:
    """The ``subscription.changed`` outbox payloads about ``account``, oldest first."""
    async with db() as session:
        rows = await session.scalars(
            select(OutboxRow.payload)
            .where(
                OutboxRow.event_type == "subscription.changed",
                OutboxRow.payload["user_id"].astext == str(ids.decode(ids.Prefix.USER, account.id)),
            )
            .order_by(OutboxRow.id)
        )
        return list(rows)


async def test_plans_are_listed_with_prices_and_benefits(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    user = await make_account()
    response = await client.get("/v1/plans", headers=user.headers)
    assert response.status_code == 200, response.text
    plans = {p["id"]: p for p in response.json()["items"]}
    assert set(plans) == {"plus_monthly", "plus_yearly", "pro_monthly"}
    assert plans["plus_monthly"]["tier"] == "plus"
    assert plans["plus_yearly"]["interval"] == "year"
    assert plans["pro_monthly"]["tier"] == "pro"
    assert "exclusive_clubs" in plans["pro_monthly"]["benefits"]
    assert "visibility_boost" in plans["plus_monthly"]["benefits"]
    assert (await client.get("/v1/plans")).status_code == 401


async def test_subscribe_charges_and_derives_the_tier(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_account()
    assert await premium_tier(client, user) is None
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404

    response = await subscribe(client, user, await make_card(GOOD_CARD))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["subscription_id"].startswith("sub_")
    assert body["status"] == "active"
    assert body["client_secret"] is None
    renewal = date.fromisoformat(body["renewal_date"])
    assert date.today() + timedelta(days=27) <= renewal <= date.today() + timedelta(days=32)

    shown = await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["subscription_id"] == body["subscription_id"]
    assert shown.json()["tier"] == "plus"
    assert shown.json()["status"] == "active"
    assert shown.json()["renewal_date"] == body["renewal_date"]
    assert shown.json()["benefits"] == ["visibility_boost", "exclusive_events"]
    assert await premium_tier(client, user) == "plus"
    events = await subscription_events(db, user)
    # The first is this write's; localstripe's own webhooks may add a renewal after it.
    assert {(e["status"], e["premium_tier"]) for e in events} == {("active", "plus")}
    assert events[0]["subscription_id"] == str(ids.decode(ids.Prefix.SUBSCRIPTION, body["subscription_id"]))

    again = await subscribe(client, user, await make_card(GOOD_CARD), plan="pro_monthly")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_subscribed"


async def test_another_users_subscription_is_not_visible_but_an_admin_sees_it(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, other, admin = await make_account(), await make_account(), await make_account()
    assert (await subscribe(client, owner, await make_card(GOOD_CARD))).status_code == 201
    assert (await client.get(f"/v1/users/{owner.id}/subscription", headers=other.headers)).status_code == 404
    async with db.begin() as session:
        await session.execute(
            text("UPDATE users SET roles = '{user,admin}' WHERE id = :id"),
            {"id": ids.decode(ids.Prefix.USER, admin.id)},
        )
    login = await client.post("/v1/auth/login", json={"email": admin.email, "password": admin.password})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    seen = await client.get(f"/v1/users/{owner.id}/subscription", headers=headers)
    assert seen.status_code == 200, seen.text
    assert seen.json()["tier"] == "plus"


async def test_declined_card_is_402_and_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard
) -> None:
    user = await make_account()
    response = await subscribe(client, user, await make_card(DECLINED_CARD))
    assert response.status_code == 402, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payment_failed"
    assert "declined" in response.json()["detail"].lower()
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404
    assert await premium_tier(client, user) is None
    # The same customer can retry with a working card.
    retry = await subscribe(client, user, await make_card(GOOD_CARD))
    assert retry.status_code == 201, retry.text


async def test_promo_codes(client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard) -> None:
    user = await make_account()
    bad = await subscribe(client, user, await make_card(GOOD_CARD), promo_code="NOT-A-CODE")
    assert bad.status_code == 422, bad.text
    assert bad.json()["code"] == "invalid_promo_code"
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404
    good = await subscribe(client, user, await make_card(GOOD_CARD), promo_code="SPRING24")
    assert good.status_code == 201, good.text
    assert good.json()["status"] == "active"


async def test_subscribe_bad_input(client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard) -> None:
    user, other = await make_account(), await make_account()
    pm = await make_card(GOOD_CARD)
    for_other = await client.post(
        "/v1/payments/subscribe",
        json={"user_id": other.id, "plan_id": "plus_monthly", "payment_method_id": pm},
        headers=user.headers,
    )
    assert for_other.status_code == 403, for_other.text
    unknown_plan = await subscribe(client, user, pm, plan="gold_forever")
    assert unknown_plan.status_code == 404, unknown_plan.text
    malformed = await client.post(
        "/v1/payments/subscribe",
        json={"user_id": "nope", "plan_id": "plus_monthly", "payment_method_id": pm},
        headers=user.headers,
    )
    assert malformed.status_code == 422, malformed.text
    extra = await subscribe(client, user, pm, status="active")
    assert extra.status_code == 422, extra.text
    unknown_pm = await subscribe(client, user, "pm_doesnotexist")
    assert unknown_pm.status_code == 422, unknown_pm.text
    anonymous = await client.post(
        "/v1/payments/subscribe", json={"user_id": user.id, "plan_id": "plus_monthly", "payment_method_id": pm}
    )
    assert anonymous.status_code == 401
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404
    assert (await client.get(f"/v1/users/{other.id}/subscription", headers=other.headers)).status_code == 404


async def test_cancel_at_period_end_and_resume(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_account()
    assert (await client.post("/v1/payments/subscription/cancel", headers=user.headers)).status_code == 404
    created = (await subscribe(client, user, await make_card(GOOD_CARD))).json()
    cancelled = await client.post("/v1/payments/subscription/cancel", headers=user.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["subscription_id"] == created["subscription_id"]
    assert cancelled.json()["cancel_at"][:10] == created["renewal_date"]
    shown = (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).json()
    assert shown["cancel_at_period_end"] is True
    assert shown["status"] == "active"
    # Still paid up until the period ends.
    assert await premium_tier(client, user) == "plus"
    resumed = await client.post("/v1/payments/subscription/resume", headers=user.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["cancel_at_period_end"] is False
    assert resumed.json()["cancel_at"] is None
    again = await client.post("/v1/payments/subscription/resume", headers=user.headers)
    assert again.status_code == 409, again.text
    # localstripe's own webhooks may add renewals in between; the cancellation flips are what count.
    flips = [e["cancel_at_period_end"] for e in await subscription_events(db, user)]
    assert [f for i, f in enumerate(flips) if i == 0 or f != flips[i - 1]] == [False, True, False]


async def test_webhook_signature_is_checked(
    client: httpx.AsyncClient, webhook_secret: str, db: async_sessionmaker[AsyncSession]
) -> None:
    payload = stripe_event("invoice.payment_failed", {"id": "in_x", "subscription": "sub_x"}, int(time.time()))
    event_id = json.loads(payload)["id"]
    missing = await client.post("/v1/payments/webhook", content=payload)
    bad = await client.post(
        "/v1/payments/webhook", content=payload, headers={"Stripe-Signature": sign(payload, "whsec_wrong")}
    )
    stale = await client.post(
        "/v1/payments/webhook",
        content=payload,
        headers={"Stripe-Signature": sign(payload, webhook_secret, int(time.time()) - 3600)},
    )
    tampered = await client.post(
        "/v1/payments/webhook",
        content=payload.replace(b"in_x", b"in_y"),
        headers={"Stripe-Signature": sign(payload, webhook_secret)},
    )
    for response in (missing, bad, stale, tampered):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    async with db() as session:
        assert await session.scalar(select(func.count()).where(WebhookEvent.id == event_id)) == 0
    ok = await deliver(client, payload, webhook_secret)
    assert ok.status_code == 200, ok.text


async def test_renewal_failure_redelivery_and_order_via_webhooks(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    webhook_secret: str,
    db: async_sessionmaker[AsyncSession],
) -> None:
    user = await make_account()
    created = (await subscribe(client, user, await make_card(GOOD_CARD))).json()
    sub_id = await stripe_subscription_id(db, created["subscription_id"])
    # Ahead of anything localstripe itself sends for this subscription.
    base = int(time.time()) + 1000
    next_end = int((datetime.now(UTC) + timedelta(days=61)).timestamp())
    invoice = {
        "id": f"in_{uuid.uuid4().hex[:12]}",
        "object": "invoice",
        "subscription": sub_id,
        "amount_paid": 999,
        "currency": "usd",
        "lines": {"data": [{"period": {"start": base, "end": next_end}}]},
    }

    renewal = stripe_event("invoice.payment_succeeded", invoice, base)
    first = await deliver(client, renewal, webhook_secret)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "duplicate": False}
    shown = (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).json()
    assert shown["renewal_date"] == datetime.fromtimestamp(next_end, UTC).date().isoformat()
    assert shown["status"] == "active"

    redelivered = await deliver(client, renewal, webhook_secret)
    assert redelivered.status_code == 200
    assert redelivered.json() == {"received": True, "duplicate": True}
    async with db() as session:
        legs = await session.scalar(select(func.count()).where(LedgerEntry.source_ref == invoice["id"]))
    assert legs == 2

    # The failure of the next renewal (newer) arrives before a success that is older: the failure wins.
    failed_invoice = {**invoice, "id": f"in_{uuid.uuid4().hex[:12]}", "amount_paid": 0}
    late_invoice = {**invoice, "id": f"in_{uuid.uuid4().hex[:12]}"}
    failure = stripe_event("invoice.payment_failed", failed_invoice, base + 200)
    older_success = stripe_event("invoice.payment_succeeded", late_invoice, base + 100)
    assert (await deliver(client, failure, webhook_secret)).status_code == 200
    assert (await deliver(client, older_success, webhook_secret)).status_code == 200
    shown = (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).json()
    assert shown["status"] == "past_due"
    assert await premium_tier(client, user) is None
    # The late success still moved money, so it is booked.
    async with db() as session:
        legs = await session.scalar(select(func.count()).where(LedgerEntry.source_ref == late_invoice["id"]))
    assert legs == 2

    # A newer success restores the tier.
    recovered = stripe_event("invoice.payment_succeeded", {**invoice, "id": f"in_{uuid.uuid4().hex[:12]}"}, base + 300)
    assert (await deliver(client, recovered, webhook_secret)).status_code == 200
    assert await premium_tier(client, user) == "plus"


async def test_subscription_deleted_webhook_refetches_and_ends_the_tier(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    webhook_secret: str,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    user = await make_account()
    created = (await subscribe(client, user, await make_card(GOOD_CARD))).json()
    sub_id = await stripe_subscription_id(db, created["subscription_id"])
    async with stripe_client(engine_env) as stripe:
        assert (await stripe.delete(f"/v1/subscriptions/{sub_id}")).status_code == 200
    # The payload claims "active"; the handler asks Stripe, which says it is gone.
    payload = stripe_event("customer.subscription.updated", {"id": sub_id, "status": "active"}, int(time.time()) + 5000)
    assert (await deliver(client, payload, webhook_secret)).status_code == 200
    assert await premium_tier(client, user) is None
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404


async def test_idempotency_key_replays_mismatches_and_in_flight(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_account()
    pm = await make_card(GOOD_CARD)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await subscribe(client, user, pm, headers=key)
    assert first.status_code == 201, first.text
    replay = await subscribe(client, user, pm, headers=key)
    assert replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    mismatch = await subscribe(client, user, pm, plan="pro_monthly", headers=key)
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["code"] == "idempotency_key_mismatch"
    async with db() as session:
        count = await session.scalar(
            select(func.count()).where(Subscription.user_id == ids.decode(ids.Prefix.USER, user.id))
        )
    assert count == 1

    # Another user may use the same key string for their own request.
    other = await make_account()
    theirs = await subscribe(client, other, await make_card(GOOD_CARD), headers=key)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["subscription_id"] != first.json()["subscription_id"]

    # A request still running under a key (as a concurrent one would be) makes the repeat 409.
    busy = await make_account()
    busy_key = f"k-{uuid.uuid4()}"
    body = {"user_id": busy.id, "plan_id": "plus_monthly", "payment_method_id": pm, "promo_code": None}
    async with db.begin() as session:
        session.add(
            IdempotencyKey(
                user_id=ids.decode(ids.Prefix.USER, busy.id),
                scope="payments.subscribe",
                key=busy_key,
                request_hash=hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest(),
                state="in_flight",
                created_at=datetime.now(UTC),
            )
        )
    in_flight = await subscribe(client, busy, pm, headers={"Idempotency-Key": busy_key})
    assert in_flight.status_code == 409, in_flight.text
    assert in_flight.json()["code"] == "idempotency_in_flight"


async def test_failed_request_frees_its_idempotency_key(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard
) -> None:
    user = await make_account()
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    declined = await subscribe(client, user, await make_card(DECLINED_CARD), headers=key)
    assert declined.status_code == 402
    # Same key, new card (a different body): the failed attempt stored nothing.
    retried = await subscribe(client, user, await make_card(GOOD_CARD), headers=key)
    assert retried.status_code == 201, retried.text


async def test_concurrent_subscribes_charge_once(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard, db: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_account()
    cards = [await make_card(GOOD_CARD) for _ in range(4)]
    results = await asyncio.gather(*(subscribe(client, user, pm) for pm in cards))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409, 409, 409], [r.text for r in results]
    async with db() as session:
        count = await session.scalar(
            select(func.count()).where(Subscription.user_id == ids.decode(ids.Prefix.USER, user.id))
        )
    assert count == 1


async def test_ledger_balances_and_history_lists_own_movements(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    webhook_secret: str,
    db: async_sessionmaker[AsyncSession],
) -> None:
    user, other = await make_account(), await make_account()
    created = (await subscribe(client, user, await make_card(GOOD_CARD))).json()
    sub_id = await stripe_subscription_id(db, created["subscription_id"])
    async with db() as session:
        customer = await session.scalar(
            text("SELECT stripe_customer_id FROM stripe_customers WHERE user_id = :u"),
            {"u": ids.decode(ids.Prefix.USER, user.id)},
        )
    invoice_id = f"in_{uuid.uuid4().hex[:12]}"
    paid = stripe_event(
        "invoice.payment_succeeded",
        {"id": invoice_id, "subscription": sub_id, "customer": customer, "amount_paid": 999, "currency": "usd"},
        int(time.time()) + 2000,
    )
    assert (await deliver(client, paid, webhook_secret)).status_code == 200
    charge_id = f"ch_{uuid.uuid4().hex[:12]}"
    for refunded in (300, 300, 999):  # a partial refund, its redelivery as a new event, then the rest
        refund = stripe_event(
            "charge.refunded",
            {"id": charge_id, "customer": customer, "amount": 999, "amount_refunded": refunded, "currency": "usd"},
            int(time.time()) + 2100,
        )
        assert (await deliver(client, refund, webhook_secret)).status_code == 200

    history = await client.get("/v1/payments", headers=user.headers)
    assert history.status_code == 200, history.text
    mine = [e for e in history.json()["items"] if invoice_id in e["description"] or charge_id in e["description"]]
    assert sorted((e["kind"], e["amount_cents"]) for e in mine) == [("charge", 999), ("refund", -699), ("refund", -300)]
    assert all(e["id"].startswith("pay_") and e["transaction_id"].startswith("txn_") for e in mine)
    first_page = await client.get("/v1/payments", params={"limit": 1}, headers=user.headers)
    assert len(first_page.json()["items"]) == 1
    assert first_page.json()["next_cursor"] is not None
    second = await client.get(
        "/v1/payments", params={"limit": 1, "cursor": first_page.json()["next_cursor"]}, headers=user.headers
    )
    assert second.json()["items"][0]["id"] != first_page.json()["items"][0]["id"]
    theirs = await client.get("/v1/payments", headers=other.headers)
    assert theirs.json()["items"] == []
    bad_cursor = await client.get("/v1/payments", params={"cursor": "garbage"}, headers=user.headers)
    assert bad_cursor.status_code == 422

    assert await ledger_is_balanced(db)


async def test_club_gating_before_and_after_subscribing(
    client: httpx.AsyncClient, make_account: MakeAccount, make_card: MakeCard
) -> None:
    owner, fan, member = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    assert club["required_tier"] is None
    assert club["locked"] is False
    # Joined before the club went premium: stays in and is not locked out.
    assert (await client.post(f"/v1/clubs/{club['id']}/join", headers=member.headers)).status_code == 200

    stranger_patch = await client.patch(f"/v1/clubs/{club['id']}", json={"required_tier": "pro"}, headers=fan.headers)
    assert stranger_patch.status_code == 403, stranger_patch.text
    bad_tier = await client.patch(f"/v1/clubs/{club['id']}", json={"required_tier": "gold"}, headers=owner.headers)
    assert bad_tier.status_code == 422, bad_tier.text
    gated = await client.patch(f"/v1/clubs/{club['id']}", json={"required_tier": "pro"}, headers=owner.headers)
    assert gated.status_code == 200, gated.text
    assert gated.json()["required_tier"] == "pro"
    assert gated.json()["locked"] is False  # the owner is a member

    seen = (await client.get(f"/v1/clubs/{club['id']}", headers=fan.headers)).json()
    assert seen["locked"] is True
    listed = await client.get("/v1/clubs", params={"limit": 100}, headers=fan.headers)
    assert {c["id"]: c["locked"] for c in listed.json()["items"]}[club["id"]] is True
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=member.headers)).json()["locked"] is False

    refused = await client.post(f"/v1/clubs/{club['id']}/join", headers=fan.headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "premium_required"

    # Plus is below pro: still locked.
    assert (await subscribe(client, fan, await make_card(GOOD_CARD))).status_code == 201
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=fan.headers)).json()["locked"] is True
    assert (await client.post(f"/v1/clubs/{club['id']}/join", headers=fan.headers)).status_code == 403

    pro = await make_account()
    assert (await subscribe(client, pro, await make_card(GOOD_CARD), plan="pro_monthly")).status_code == 201
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=pro.headers)).json()["locked"] is False
    joined = await client.post(f"/v1/clubs/{club['id']}/join", headers=pro.headers)
    assert joined.status_code == 200, joined.text

    opened = await client.patch(f"/v1/clubs/{club['id']}", json={"required_tier": None}, headers=owner.headers)
    assert opened.json()["required_tier"] is None
    assert (await client.post(f"/v1/clubs/{club['id']}/join", headers=fan.headers)).status_code == 200


async def test_subscribers_posts_need_an_active_subscription(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    webhook_secret: str,
    db: async_sessionmaker[AsyncSession],
) -> None:
    creator, reader = await make_account(), await make_account()
    paid = await profile_post(client, creator, "for subscribers", "subscribers")
    public = await profile_post(client, creator, "for everyone")
    path = f"/v1/users/{creator.id}/posts"

    assert (await client.get(f"/v1/posts/{paid}", headers=reader.headers)).status_code == 404
    assert await feed_ids(client, path, reader) == [public]

    created = (await subscribe(client, reader, await make_card(GOOD_CARD))).json()
    assert (await client.get(f"/v1/posts/{paid}", headers=reader.headers)).status_code == 200
    assert await feed_ids(client, path, reader) == [public, paid]

    # A failed renewal ends the access.
    sub_id = await stripe_subscription_id(db, created["subscription_id"])
    failure = stripe_event(
        "invoice.payment_failed", {"id": f"in_{uuid.uuid4().hex[:12]}", "subscription": sub_id}, int(time.time()) + 3000
    )
    assert (await deliver(client, failure, webhook_secret)).status_code == 200
    assert (await client.get(f"/v1/posts/{paid}", headers=reader.headers)).status_code == 404
    assert (await client.get(f"/v1/posts/{paid}", headers=creator.headers)).status_code == 200
