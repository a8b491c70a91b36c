"""Promo codes: admin endpoints, a real discount on the first invoice, one use each, a cap that holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.payments.models import PromoCode, PromoRedemption
from tests.api.conftest import MakeAccount
from tests.api.payment_support import (
    AUTH_CARD,
    DECLINED_CARD,
    GOOD_CARD,
    MakeCard,
    create_code,
    first_invoice_paid,
    make_admin,
    new_code,
    premium_tier,
    stripe_client,
    subscribe,
)


async def test_admins_manage_codes_and_others_cannot(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin, user = await make_admin(make_account, db), await make_account()
    code = new_code()
    assert (await create_code(client, user, code=code, percent_off=10)).status_code == 403
    assert (await client.get("/v1/admin/promo-codes", headers=user.headers)).status_code == 403
    assert (
        await client.patch(f"/v1/admin/promo-codes/{code}", json={"active": False}, headers=user.headers)
    ).status_code == 403

    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for body, field in (
        ({"code": "x", "percent_off": 10}, "code"),
        ({"code": "HAS SPACE", "percent_off": 10}, "code"),
        ({"code": code, "percent_off": 0}, "percent_off"),
        ({"code": code, "percent_off": 101}, "percent_off"),
        ({"code": code, "percent_off": 10, "max_redemptions": 0}, "max_redemptions"),
        ({"code": code, "percent_off": 10, "expires_at": past}, "expires_at"),
    ):
        bad = await create_code(client, admin, **body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in bad.json()["errors"]}
    async with db() as session:
        assert await session.get(PromoCode, code) is None

    created = await create_code(client, admin, code=code.lower(), percent_off=25, max_redemptions=10)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "code": code,
        "percent_off": 25,
        "max_redemptions": 10,
        "redemption_count": 0,
        "expires_at": None,
        "active": True,
        "owner_id": None,
        "club_id": None,
    }
    again = await create_code(client, admin, code=code, percent_off=5)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "promo_code_exists"
    listed = await client.get("/v1/admin/promo-codes", headers=admin.headers)
    codes = {p["code"] for p in listed.json()["items"]}
    assert {code, "SPRING24"} <= codes
    off = await client.patch(f"/v1/admin/promo-codes/{code}", json={"active": False}, headers=admin.headers)
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert (await client.get("/v1/admin/promo-codes/NOPE-NOPE", headers=admin.headers)).status_code == 404


async def test_a_code_really_lowers_the_first_charge(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    admin = await make_admin(make_account, db)
    code = new_code()
    assert (await create_code(client, admin, code=code, percent_off=50)).status_code == 201
    full, discounted = await make_account(), await make_account()
    plain = await subscribe(client, full, await make_card(GOOD_CARD))
    assert plain.status_code == 201, plain.text
    assert await first_invoice_paid(db, engine_env, plain.json()["subscription_id"]) == 999
    with_code = await subscribe(client, discounted, await make_card(GOOD_CARD), promo_code=code.lower())
    assert with_code.status_code == 201, with_code.text
    assert with_code.json()["status"] == "active"
    assert await first_invoice_paid(db, engine_env, with_code.json()["subscription_id"]) == 500
    shown = await client.get(f"/v1/admin/promo-codes/{code}", headers=admin.headers)
    assert shown.json()["redemption_count"] == 1
    async with db() as session:
        redemption = await session.scalar(select(PromoRedemption).where(PromoRedemption.code == code))
    assert redemption is not None
    assert redemption.discount_cents == 499


async def test_invalid_expired_used_and_switched_off_codes_are_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    admin = await make_admin(make_account, db)
    expired, off = new_code(), new_code()
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await create_code(client, admin, code=expired, percent_off=10, expires_at=soon)).status_code == 201
    assert (await create_code(client, admin, code=off, percent_off=10)).status_code == 201
    async with db.begin() as session:
        await session.execute(
            update(PromoCode)
            .where(PromoCode.code == expired)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    await client.patch(f"/v1/admin/promo-codes/{off}", json={"active": False}, headers=admin.headers)
    user = await make_account()
    for code in ("NOT-A-CODE", expired, off):
        refused = await subscribe(client, user, await make_card(GOOD_CARD), promo_code=code)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_promo_code"
    assert (await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)).status_code == 404

    # One use per user: a first subscription left incomplete (3-D Secure) still used the code.
    reuse = new_code()
    assert (await create_code(client, admin, code=reuse, percent_off=10)).status_code == 201
    first = await subscribe(client, user, await make_card(AUTH_CARD), promo_code=reuse)
    assert first.status_code == 201, first.text
    second = await subscribe(client, user, await make_card(GOOD_CARD), promo_code=reuse)
    assert second.status_code == 422, second.text
    assert second.json()["code"] == "invalid_promo_code"

    # A declined card does not use up the code.
    declined_user = await make_account()
    declined = await subscribe(client, declined_user, await make_card(DECLINED_CARD), promo_code=reuse)
    assert declined.status_code == 402, declined.text
    async with db() as session:
        count = await session.scalar(
            select(func.count()).select_from(PromoRedemption).where(PromoRedemption.code == reuse)
        )
    assert count == 1


async def test_concurrent_redemptions_never_pass_the_cap(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    admin = await make_admin(make_account, db)
    code = new_code()
    assert (await create_code(client, admin, code=code, percent_off=20, max_redemptions=2)).status_code == 201
    users = [await make_account() for _ in range(6)]
    cards = [await make_card(GOOD_CARD) for _ in users]
    responses = await asyncio.gather(
        *(subscribe(client, u, pm, promo_code=code) for u, pm in zip(users, cards, strict=True))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201, 422, 422, 422, 422], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"invalid_promo_code"}
    async with db() as session:
        promo = await session.get(PromoCode, code)
        redemptions = await session.scalar(
            select(func.count()).select_from(PromoRedemption).where(PromoRedemption.code == code)
        )
    assert promo is not None
    assert promo.redemption_count == 2
    assert redemptions == 2


async def test_a_card_needing_authentication_returns_the_client_secret(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    engine_env: dict[str, str],
) -> None:
    user = await make_account()
    response = await subscribe(client, user, await make_card(AUTH_CARD))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "incomplete"
    assert body["client_secret"]
    assert body["client_secret"].startswith("pi_")
    assert await premium_tier(client, user) is None

    # The app completes 3-D Secure; Stripe's webhooks then activate the subscription.
    intent_id = body["client_secret"].split("_secret_")[0]
    async with stripe_client(engine_env) as stripe:
        done = await stripe.post(
            f"/v1/payment_intents/{intent_id}/_authenticate",
            data={"client_secret": body["client_secret"], "success": "true"},
        )
    assert done.status_code == 200, done.text
    async with asyncio.timeout(15):
        while await premium_tier(client, user) != "plus":
            await asyncio.sleep(0.2)
    shown = await client.get(f"/v1/users/{user.id}/subscription", headers=user.headers)
    assert shown.json()["status"] == "active"
