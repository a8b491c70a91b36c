"""Creator and club member tiers against localstripe: access, lapse through Stripe's webhooks, the ledger."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.clubs.models import ClubMembership
from shared.domain.payments.models import LedgerEntry, MemberTier, Subscription
from tests.api.club_support import create_club, stored_count
from tests.api.conftest import Account, MakeAccount
from tests.api.posts.support import profile_post
from tests.api.test_payments import GOOD_CARD, MakeCard, make_card, stripe_base, stripe_subscription_id  # noqa: F401
from tests.api.test_promo_codes import AUTH_CARD


async def make_tier(client: httpx.AsyncClient, owner: Account, path: str, **body: Any) -> httpx.Response:
    """POST a tier definition."""
    payload = {"name": f"Fans {uuid.uuid4().hex[:6]}", "amount_cents": 500, **body}
    return await client.post(path, json=payload, headers=owner.headers)


async def join_tier(client: httpx.AsyncClient, user: Account, tier_id: str, pm: str) -> httpx.Response:
    """POST /v1/tiers/{id}/subscribe."""
    return await client.post(f"/v1/tiers/{tier_id}/subscribe", json={"payment_method_id": pm}, headers=user.headers)


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
    make_card: MakeCard,  # noqa: F811
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
    make_card: MakeCard,  # noqa: F811
    db: async_sessionmaker[AsyncSession],
    stripe_base: str,  # noqa: F811
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
    key = load_settings(engine_env).stripe_api_key
    async with httpx.AsyncClient(base_url=stripe_base, auth=(key, ""), timeout=10) as stripe:
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
    make_card: MakeCard,  # noqa: F811
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
    make_card: MakeCard,  # noqa: F811
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
    make_card: MakeCard,  # noqa: F811
    db: async_sessionmaker[AsyncSession],
    stripe_base: str,  # noqa: F811
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

    key = load_settings(engine_env).stripe_api_key
    async with httpx.AsyncClient(base_url=stripe_base, auth=(key, ""), timeout=10) as stripe:
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
