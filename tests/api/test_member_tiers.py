"""Creator and club member tiers against localstripe: access, lapse through Stripe's webhooks, the ledger."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import ClubMembership
from shared.domain.payments.models import LedgerEntry, MemberTier, PromoCode, PromoRedemption, Subscription
from tests.api.club_support import create_club, stored_count
from tests.api.conftest import Account, MakeAccount
from tests.api.payment_support import (
    AUTH_CARD,
    DECLINED_CARD,
    GOOD_CARD,
    MakeCard,
    create_code,
    deliver,
    first_invoice_paid,
    ledger_is_balanced,
    ledger_legs,
    make_admin,
    new_code,
    stripe_client,
    stripe_event,
    stripe_get,
    stripe_subscription_id,
    subscribe,
)
from tests.api.posts.support import profile_post


async def make_tier(client: httpx.AsyncClient, owner: Account, path: str, **body: Any) -> httpx.Response:
    """POST a tier definition."""
    payload = {"name": f"Fans {uuid.uuid4().hex[:6]}", "amount_cents": 500, **body}
    return await client.post(path, json=payload, headers=owner.headers)


async def join_tier(
    client: httpx.AsyncClient, user: Account, tier_id: str, pm: str, promo_code: str | None = None
) -> httpx.Response:
    """POST /v1/tiers/{id}/subscribe, with a promo code when given."""
    body: dict[str, Any] = {"payment_method_id": pm}
    if promo_code is not None:
        body["promo_code"] = promo_code
    return await client.post(f"/v1/tiers/{tier_id}/subscribe", json=body, headers=user.headers)


async def earnings(client: httpx.AsyncClient, creator: Account) -> dict[str, Any]:
    """GET /v1/tiers/earnings for ``creator``."""
    response = await client.get("/v1/tiers/earnings", headers=creator.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_for_gross(client: httpx.AsyncClient, creator: Account, gross: int) -> dict[str, Any]:
    """The creator's earnings once Stripe's invoice webhooks have booked ``gross``."""
    async with asyncio.timeout(15):
        while (found := await earnings(client, creator))["gross_cents"] != gross:
            await asyncio.sleep(0.2)
    return found


async def tier_count(db: async_sessionmaker[AsyncSession]) -> int:
    """How many tiers exist."""
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberTier)) or 0)


async def membership_status(db: async_sessionmaker[AsyncSession], club_id: str, user: Account) -> str | None:
    """The user's membership status in a club, or None."""
    async with db() as session:
        status: str | None = await session.scalar(
            select(ClubMembership.status).where(
                ClubMembership.club_id == ids.decode(ids.Prefix.CLUB, club_id),
                ClubMembership.user_id == ids.decode(ids.Prefix.USER, user.id),
            )
        )
    return status


async def test_creator_tier_unlocks_subscriber_posts_and_pays_the_creator_less_the_fee(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    creator, fan, stranger = await make_account(), await make_account(), await make_account()
    created = await make_tier(
        client, creator, f"/v1/users/{creator.id}/tiers", amount_cents=1000, description="Behind the scenes"
    )
    assert created.status_code == 201, created.text
    tier = created.json()
    assert tier["id"].startswith("tier_")
    assert (tier["amount_cents"], tier["interval"], tier["owner_id"], tier["club_id"]) == (
        1000,
        "month",
        creator.id,
        None,
    )
    listed = await client.get(f"/v1/users/{creator.id}/tiers", headers=stranger.headers)
    assert [t["id"] for t in listed.json()["items"]] == [tier["id"]]

    paid = await profile_post(client, creator, "only for my fans", "subscribers")
    assert (await client.get(f"/v1/posts/{paid}", headers=fan.headers)).status_code == 404

    joined = await join_tier(client, fan, tier["id"], await make_card(GOOD_CARD))
    assert joined.status_code == 201, joined.text
    assert joined.json()["status"] == "active"
    assert joined.json()["subscription_id"].startswith("sub_")
    assert (await client.get(f"/v1/posts/{paid}", headers=fan.headers)).status_code == 200
    assert (await client.get(f"/v1/posts/{paid}", headers=stranger.headers)).status_code == 404
    # A creator tier is not the platform plan: the fan's premium tier is unchanged.
    assert (await client.get("/v1/users/me", headers=fan.headers)).json()["premium_tier"] is None

    again = await join_tier(client, fan, tier["id"], await make_card(GOOD_CARD))
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_subscribed"
    own = await join_tier(client, creator, tier["id"], await make_card(GOOD_CARD))
    assert own.status_code == 409, own.text
    assert own.json()["code"] == "own_tier"

    # The first invoice reaches the ledger through Stripe's webhook: creator earns 1000, pays a 5% fee.
    creator_key = ids.decode(ids.Prefix.USER, creator.id)
    async with asyncio.timeout(15):
        while True:
            async with db() as session:
                rows = list(
                    await session.execute(
                        select(
                            LedgerEntry.account, LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.source_ref
                        ).where(
                            LedgerEntry.source_ref.in_(
                                select(LedgerEntry.source_ref).where(LedgerEntry.user_id == creator_key)
                            )
                        )
                    )
                )
            if len(rows) == 4:
                break
            await asyncio.sleep(0.2)
    legs = sorted((r[0], r[1], r[2]) for r in rows)
    assert legs == [
        ("creator_earnings", "charge", 1000),
        ("creator_earnings", "fee", -50),
        ("customer", "charge", -1000),
        ("platform_revenue", "fee", 50),
    ]
    assert sum(r[2] for r in rows) == 0
    earned = await client.get("/v1/tiers/earnings", headers=creator.headers)
    assert earned.status_code == 200, earned.text
    assert earned.json() == {
        "currency": "usd",
        "gross_cents": 1000,
        "fee_cents": 50,
        "refund_cents": 0,
        "net_cents": 950,
        "platform_fee_bps": 500,
        "active_subscribers": 1,
    }
    nothing = (await client.get("/v1/tiers/earnings", headers=fan.headers)).json()
    assert (nothing["gross_cents"], nothing["net_cents"], nothing["active_subscribers"]) == (0, 0, 0)

    cancelled = await client.post(f"/v1/tiers/{tier['id']}/cancel", headers=fan.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancel_at"]
    # Access lasts to the end of the paid period.
    assert (await client.get(f"/v1/posts/{paid}", headers=fan.headers)).status_code == 200
    assert (await client.post(f"/v1/tiers/{tier['id']}/cancel", headers=stranger.headers)).status_code == 404


async def test_club_tier_grants_membership_until_the_subscription_lapses(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    owner, member = await make_account(), await make_account()
    club = await create_club(client, owner, privacy_level="private")
    created = await make_tier(client, owner, f"/v1/clubs/{club['id']}/tiers", interval="year")
    assert created.status_code == 201, created.text
    tier = created.json()
    assert tier["club_id"] == club["id"]
    assert await membership_status(db, club["id"], member) is None

    joined = await join_tier(client, member, tier["id"], await make_card(GOOD_CARD))
    assert joined.status_code == 201, joined.text
    assert await membership_status(db, club["id"], member) == "active"
    assert await stored_count(db, club["id"]) == (2, 2)

    # Stripe ends the subscription (as after failed renewals): its deleted webhook removes the membership.
    remote = await stripe_subscription_id(db, joined.json()["subscription_id"])
    async with stripe_client(engine_env) as stripe:
        deleted = await stripe.delete(f"/v1/subscriptions/{remote}")
    assert deleted.status_code == 200, deleted.text
    async with asyncio.timeout(15):
        while await membership_status(db, club["id"], member) is not None:
            await asyncio.sleep(0.2)
    assert await stored_count(db, club["id"]) == (1, 1)
    async with db() as session:
        status = await session.scalar(
            select(Subscription.status).where(
                Subscription.id == ids.decode(ids.Prefix.SUBSCRIPTION, joined.json()["subscription_id"])
            )
        )
    assert status == "canceled"


async def test_bad_input_and_other_peoples_ids(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    creator, other = await make_account(), await make_account()
    club = await create_club(client, creator)
    before = await tier_count(db)
    for body, field in (
        ({"name": ""}, "name"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": 10_000_000}, "amount_cents"),
        ({"description": "x" * 501}, "description"),
    ):
        bad = await make_tier(client, creator, f"/v1/users/{creator.id}/tiers", **body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in bad.json()["errors"]}
    assert (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers", interval="week")).status_code in (
        400,
        422,
    )
    not_mine = await make_tier(client, other, f"/v1/users/{creator.id}/tiers")
    assert not_mine.status_code == 403, not_mine.text
    not_owner = await make_tier(client, other, f"/v1/clubs/{club['id']}/tiers")
    assert not_owner.status_code == 403, not_owner.text
    assert not_owner.json()["code"] == "not_club_owner"
    missing = ids.encode(ids.Prefix.CLUB, uuid.uuid4())
    assert (await make_tier(client, creator, f"/v1/clubs/{missing}/tiers")).status_code == 404
    assert await tier_count(db) == before

    unknown = ids.encode(ids.Prefix.MEMBER_TIER, uuid.uuid4())
    assert (await join_tier(client, other, unknown, await make_card(GOOD_CARD))).status_code == 404
    assert (await join_tier(client, other, "tier_bogus", await make_card(GOOD_CARD))).status_code == 404
    tier = (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers")).json()
    blank = await join_tier(client, other, tier["id"], " ")
    assert blank.status_code == 422, blank.text
    unknown_pm = await join_tier(client, other, tier["id"], "pm_missing")
    assert unknown_pm.status_code == 422, unknown_pm.text


async def test_concurrent_subscribes_to_one_tier_make_one_subscription(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    creator, fan = await make_account(), await make_account()
    tier = (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers")).json()
    cards = [await make_card(GOOD_CARD) for _ in range(4)]
    responses = await asyncio.gather(*(join_tier(client, fan, tier["id"], pm) for pm in cards))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409], [r.text for r in responses]
    async with db() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.member_tier_id == ids.decode(ids.Prefix.MEMBER_TIER, tier["id"]))
        )
    assert count == 1


async def test_premium_required_sends_one_premium_offer_a_day(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, fan = await make_account(), await make_account()
    club = await create_club(client, owner)
    gated = await client.patch(f"/v1/clubs/{club['id']}", json={"required_tier": "pro"}, headers=owner.headers)
    assert gated.status_code == 200, gated.text

    async def offers() -> list[dict[str, Any]]:
        listed = await client.get("/v1/notifications", headers=fan.headers)
        assert listed.status_code == 200, listed.text
        return [n for n in listed.json()["items"] if n["type"] == "premium_offer"]

    assert await offers() == []
    for _ in range(3):
        refused = await client.post(f"/v1/clubs/{club['id']}/join", headers=fan.headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "premium_required"
    found = await offers()
    assert len(found) == 1
    assert found[0]["title"]
    # Other refusals (not premium ones) do not nudge anyone.
    other = await make_account()
    refused_other = await make_tier(client, other, f"/v1/users/{owner.id}/tiers")
    assert refused_other.status_code == 403, refused_other.text
    listed = await client.get("/v1/notifications", headers=other.headers)
    assert [n for n in listed.json()["items"] if n["type"] == "premium_offer"] == []


async def test_a_card_needing_authentication_joins_the_club_once_confirmed(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    owner, member, other = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    tier = (await make_tier(client, owner, f"/v1/clubs/{club['id']}/tiers")).json()
    pending = await join_tier(client, member, tier["id"], await make_card(AUTH_CARD))
    assert pending.status_code == 201, pending.text
    assert pending.json()["status"] == "incomplete"
    secret = pending.json()["client_secret"]
    assert secret.startswith("pi_")
    assert await membership_status(db, club["id"], member) is None

    async with stripe_client(engine_env) as stripe:
        done = await stripe.post(
            f"/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate",
            data={"client_secret": secret, "success": "true"},
        )
    assert done.status_code == 200, done.text
    async with asyncio.timeout(15):
        while await membership_status(db, club["id"], member) != "active":
            await asyncio.sleep(0.2)

    # Idempotency-Key: a retry replays the first answer instead of subscribing twice.
    headers = {**other.headers, "Idempotency-Key": f"tier-{uuid.uuid4()}"}
    body = {"payment_method_id": await make_card(GOOD_CARD)}
    first = await client.post(f"/v1/tiers/{tier['id']}/subscribe", json=body, headers=headers)
    again = await client.post(f"/v1/tiers/{tier['id']}/subscribe", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["subscription_id"] == first.json()["subscription_id"]
    assert again.headers.get("idempotent-replayed") == "true"


async def test_a_refunded_tier_charge_comes_off_the_creators_earnings_not_the_platforms(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
    webhook_secret: str,
) -> None:
    creator, fan = await make_account(), await make_account()
    tier = (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers", amount_cents=1000)).json()
    joined = await join_tier(client, fan, tier["id"], await make_card(GOOD_CARD))
    assert joined.status_code == 201, joined.text
    await wait_for_gross(client, creator, 1000)

    # The charge that paid the first invoice, as Stripe has it.
    remote = await stripe_subscription_id(db, joined.json()["subscription_id"])
    subscription = await stripe_get(engine_env, f"/v1/subscriptions/{remote}")
    invoice = await stripe_get(engine_env, f"/v1/invoices/{subscription['latest_invoice']}")
    intent = await stripe_get(engine_env, f"/v1/payment_intents/{invoice['payment_intent']}")
    latest = intent["latest_charge"]
    charge_id = str(latest["id"] if isinstance(latest, dict) else latest)

    async def refund(amount: int) -> bytes:
        """Refund part of the charge through Stripe's API; the ``charge.refunded`` event Stripe would send."""
        async with stripe_client(engine_env) as stripe:
            made = await stripe.post("/v1/refunds", data={"charge": charge_id, "amount": str(amount)})
        assert made.status_code == 200, made.text
        charge = await stripe_get(engine_env, f"/v1/charges/{charge_id}")
        return stripe_event("charge.refunded", charge, int(time.time()))

    partial = await refund(400)
    first = await deliver(client, partial, webhook_secret)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "duplicate": False}
    # 400 of 1000 back: the creator returns 400 and the platform 20 of its 50 fee.
    after_partial = await earnings(client, creator)
    assert after_partial == {
        "currency": "usd",
        "gross_cents": 1000,
        "fee_cents": 30,
        "refund_cents": 400,
        "net_cents": 570,
        "platform_fee_bps": 500,
        "active_subscribers": 1,
    }
    redelivered = await deliver(client, partial, webhook_secret)
    assert redelivered.json() == {"received": True, "duplicate": True}
    assert await earnings(client, creator) == after_partial

    assert (await deliver(client, await refund(600), webhook_secret)).status_code == 200
    refunded = await earnings(client, creator)
    assert (refunded["gross_cents"], refunded["fee_cents"], refunded["refund_cents"], refunded["net_cents"]) == (
        1000,
        0,
        1000,
        0,
    )
    # Another event reporting the same refunded total books nothing more.
    same = await stripe_get(engine_env, f"/v1/charges/{charge_id}")
    again = await deliver(client, stripe_event("charge.refunded", same, int(time.time())), webhook_secret)
    assert again.json() == {"received": True, "duplicate": False}
    assert await earnings(client, creator) == refunded

    legs = await ledger_legs(db, f"{charge_id}:")
    # The platform's revenue never pays the refund: it only gives its fee back.
    assert sorted((leg.account, leg.kind, leg.amount_cents) for leg in legs) == sorted(
        [
            ("customer", "refund", 400),
            ("creator_earnings", "refund", -400),
            ("creator_earnings", "fee", 20),
            ("platform_revenue", "fee", -20),
            ("customer", "refund", 600),
            ("creator_earnings", "refund", -600),
            ("creator_earnings", "fee", 30),
            ("platform_revenue", "fee", -30),
        ]
    )
    assert await ledger_is_balanced(db)
    history = await client.get("/v1/payments", headers=fan.headers)
    assert sorted(e["amount_cents"] for e in history.json()["items"]) == [-600, -400, 1000]


async def test_creators_and_club_owners_manage_codes_for_their_own_tiers(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    creator, other = await make_account(), await make_account()
    club = await create_club(client, creator)
    code = new_code()
    for path in (f"/v1/users/{creator.id}/promo-codes", f"/v1/clubs/{club['id']}/promo-codes"):
        refused = await client.post(path, json={"code": code, "percent_off": 10}, headers=other.headers)
        assert refused.status_code == 403, refused.text
        assert (await client.get(path, headers=other.headers)).status_code == 403
    missing = ids.encode(ids.Prefix.CLUB, uuid.uuid4())
    assert (
        await client.post(
            f"/v1/clubs/{missing}/promo-codes", json={"code": code, "percent_off": 10}, headers=creator.headers
        )
    ).status_code == 404
    for body, field in (({"code": "x", "percent_off": 10}, "code"), ({"code": code, "percent_off": 0}, "percent_off")):
        bad = await client.post(f"/v1/users/{creator.id}/promo-codes", json=body, headers=creator.headers)
        assert bad.status_code == 422, bad.text
        assert field in {e["field"] for e in bad.json()["errors"]}
    async with db() as session:
        assert await session.get(PromoCode, code) is None

    mine = await client.post(
        f"/v1/users/{creator.id}/promo-codes", json={"code": code, "percent_off": 30}, headers=creator.headers
    )
    assert mine.status_code == 201, mine.text
    assert (mine.json()["owner_id"], mine.json()["club_id"]) == (creator.id, None)
    club_code = new_code()
    ours = await client.post(
        f"/v1/clubs/{club['id']}/promo-codes", json={"code": club_code, "percent_off": 15}, headers=creator.headers
    )
    assert ours.status_code == 201, ours.text
    assert (ours.json()["owner_id"], ours.json()["club_id"]) == (creator.id, club["id"])
    taken = await client.post(
        f"/v1/users/{other.id}/promo-codes", json={"code": code, "percent_off": 5}, headers=other.headers
    )
    assert taken.status_code == 409, taken.text

    listed = await client.get(f"/v1/users/{creator.id}/promo-codes", headers=creator.headers)
    assert [p["code"] for p in listed.json()["items"]] == [code]
    listed_club = await client.get(f"/v1/clubs/{club['id']}/promo-codes", headers=creator.headers)
    assert [p["code"] for p in listed_club.json()["items"]] == [club_code]
    # Someone else's code, through your own path, is not found and stays on.
    foreign = await client.patch(
        f"/v1/users/{other.id}/promo-codes/{code}", json={"active": False}, headers=other.headers
    )
    assert foreign.status_code == 404, foreign.text
    off = await client.patch(
        f"/v1/users/{creator.id}/promo-codes/{code.lower()}", json={"active": False}, headers=creator.headers
    )
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False


async def test_tier_promo_codes_apply_only_to_their_creators_tiers_and_cut_what_the_creator_earns(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    admin = await make_admin(make_account, db)
    creator, rival, owner, fan = [await make_account() for _ in range(4)]
    club = await create_club(client, owner)
    tier = (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers", amount_cents=1000)).json()
    rival_tier = (await make_tier(client, rival, f"/v1/users/{rival.id}/tiers", amount_cents=1000)).json()
    club_tier = (await make_tier(client, owner, f"/v1/clubs/{club['id']}/tiers", amount_cents=2000)).json()
    creator_code, club_code, platform_code = new_code(), new_code(), new_code()
    assert (
        await client.post(
            f"/v1/users/{creator.id}/promo-codes",
            json={"code": creator_code, "percent_off": 50, "max_redemptions": 5},
            headers=creator.headers,
        )
    ).status_code == 201
    assert (
        await client.post(
            f"/v1/clubs/{club['id']}/promo-codes", json={"code": club_code, "percent_off": 25}, headers=owner.headers
        )
    ).status_code == 201
    assert (await create_code(client, admin, code=platform_code, percent_off=50)).status_code == 201

    # Codes outside their scope are refused like unknown ones, before anything is charged.
    for tier_id, code in (
        (rival_tier["id"], creator_code),  # another creator's code
        (tier["id"], platform_code),  # a platform code on a creator tier
        (tier["id"], club_code),  # a club's code on another owner's creator tier
        (club_tier["id"], creator_code),
        (tier["id"], "NO-SUCH-CODE"),
    ):
        refused = await join_tier(client, fan, tier_id, await make_card(GOOD_CARD), promo_code=code)
        assert refused.status_code == 422, (code, refused.text)
        assert refused.json()["code"] == "invalid_promo_code"
    on_plan = await subscribe(client, fan, await make_card(GOOD_CARD), promo_code=creator_code)
    assert on_plan.status_code == 422, on_plan.text
    assert on_plan.json()["code"] == "invalid_promo_code"
    async with db() as session:
        fan_subs = await session.scalar(
            select(func.count()).where(Subscription.user_id == ids.decode(ids.Prefix.USER, fan.id))
        )
        unused = await session.scalar(
            select(func.count())
            .select_from(PromoRedemption)
            .where(PromoRedemption.user_id == ids.decode(ids.Prefix.USER, fan.id))
        )
    assert (fan_subs, unused) == (0, 0)

    # A declined card does not use the code up.
    declined = await join_tier(client, fan, tier["id"], await make_card(DECLINED_CARD), promo_code=creator_code)
    assert declined.status_code == 402, declined.text

    joined = await join_tier(client, fan, tier["id"], await make_card(GOOD_CARD), promo_code=creator_code.lower())
    assert joined.status_code == 201, joined.text
    assert joined.json()["status"] == "active"
    assert await first_invoice_paid(db, engine_env, joined.json()["subscription_id"]) == 500
    # The creator funds the discount: earnings and the platform fee come from the 500 actually paid.
    earned = await wait_for_gross(client, creator, 500)
    assert (earned["fee_cents"], earned["net_cents"]) == (25, 475)
    assert (await earnings(client, rival))["gross_cents"] == 0
    codes = (await client.get(f"/v1/users/{creator.id}/promo-codes", headers=creator.headers)).json()["items"]
    assert [(c["code"], c["redemption_count"]) for c in codes] == [(creator_code, 1)]
    async with db() as session:
        redemption = await session.scalar(select(PromoRedemption).where(PromoRedemption.code == creator_code))
    assert redemption is not None
    assert (redemption.discount_cents, redemption.subscription_id) == (
        500,
        ids.decode(ids.Prefix.SUBSCRIPTION, joined.json()["subscription_id"]),
    )

    # A club code discounts that club's tier; one use per user.
    member = await make_account()
    in_club = await join_tier(client, member, club_tier["id"], await make_card(GOOD_CARD), promo_code=club_code)
    assert in_club.status_code == 201, in_club.text
    assert await first_invoice_paid(db, engine_env, in_club.json()["subscription_id"]) == 1500
    await wait_for_gross(client, owner, 1500)
    other_fan = await make_account()
    assert (
        await join_tier(client, other_fan, club_tier["id"], await make_card(GOOD_CARD), promo_code=club_code)
    ).status_code == 201

    # Switched off or expired codes are refused too.
    late = await make_account()
    await client.patch(f"/v1/clubs/{club['id']}/promo-codes/{club_code}", json={"active": False}, headers=owner.headers)
    async with db.begin() as session:
        await session.execute(
            update(PromoCode)
            .where(PromoCode.code == creator_code)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    for tier_id, code in ((club_tier["id"], club_code), (tier["id"], creator_code)):
        refused = await join_tier(client, late, tier_id, await make_card(GOOD_CARD), promo_code=code)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_promo_code"
    assert await ledger_is_balanced(db)


async def test_concurrent_tier_subscribes_never_pass_a_creator_codes_cap(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    creator = await make_account()
    tier = (await make_tier(client, creator, f"/v1/users/{creator.id}/tiers")).json()
    code = new_code()
    created = await client.post(
        f"/v1/users/{creator.id}/promo-codes",
        json={"code": code, "percent_off": 20, "max_redemptions": 2},
        headers=creator.headers,
    )
    assert created.status_code == 201, created.text
    fans = [await make_account() for _ in range(6)]
    cards = [await make_card(GOOD_CARD) for _ in fans]
    responses = await asyncio.gather(
        *(join_tier(client, f, tier["id"], pm, promo_code=code) for f, pm in zip(fans, cards, strict=True))
    )
    assert sorted(r.status_code for r in responses) == [201, 201, 422, 422, 422, 422], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"invalid_promo_code"}
    async with db() as session:
        promo = await session.get(PromoCode, code)
        redemptions = await session.scalar(
            select(func.count()).select_from(PromoRedemption).where(PromoRedemption.code == code)
        )
        subscribed = await session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.member_tier_id == ids.decode(ids.Prefix.MEMBER_TIER, tier["id"]))
        )
    assert promo is not None
    assert (promo.redemption_count, redemptions, subscribed) == (2, 2, 2)
