"""Promo codes: admin endpoints, a real discount on the first invoice, one use each, a cap that holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.payments.models import PromoCode, PromoRedemption
from tests.api.conftest import Account, MakeAccount
from tests.api.test_payments import (  # noqa: F401
    DECLINED_CARD,
    GOOD_CARD,
    MakeCard,
    make_card,
    premium_tier,
    stripe_base,
    stripe_subscription_id,
    subscribe,
)

# localstripe asks for 3-D Secure on this card, as Stripe does.
AUTH_CARD = "4000002500003155"


async def make_admin(make_account: MakeAccount, db: async_sessionmaker[AsyncSession]) -> Account:
    """A fresh user with the admin role."""
    admin = await make_account()
    async with db.begin() as session:
        await session.execute(
            text("UPDATE users SET roles = '{user,admin}' WHERE id = :id"),
            {"id": ids.decode(ids.Prefix.USER, admin.id)},
        )
    return admin


def new_code() -> str:
    """A code no other test uses."""
    return f"T{uuid.uuid4().hex[:10].upper()}"


async def create_code(client: httpx.AsyncClient, admin: Account, **body: Any) -> httpx.Response:
    """POST /v1/admin/promo-codes."""
    return await client.post("/v1/admin/promo-codes", json=body, headers=admin.headers)


async def stripe_get(base: str, engine_env: dict[str, str], path: str) -> dict[str, Any]:
    """A GET against localstripe with the API key."""
    key = load_settings(engine_env).stripe_api_key
    async with httpx.AsyncClient(base_url=base, auth=(key, ""), timeout=10) as stripe:
        response = await stripe.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def first_invoice_paid(
    db: async_sessionmaker[AsyncSession], base: str, engine_env: dict[str, str], subscription_id: str
) -> int:
    """What Stripe charged on a subscription's first invoice."""
    remote_id = await stripe_subscription_id(db, subscription_id)
    remote = await stripe_get(base, engine_env, f"/v1/subscriptions/{remote_id}")
    invoice = await stripe_get(base, engine_env, f"/v1/invoices/{remote['latest_invoice']}")
    return int(invoice["amount_paid"])


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
    make_card: MakeCard,  # noqa: F811
    db: async_sessionmaker[AsyncSession],
    stripe_base: str,  # noqa: F811
    engine_env: dict[str, str],
) -> None:
    admin = await make_admin(make_account, db)
    code = new_code()
    assert (await create_code(client, admin, code=code, percent_off=50)).status_code == 201
    full, discounted = await make_account(), await make_account()
    plain = await subscribe(client, full, await make_card(GOOD_CARD))
    assert plain.status_code == 201, plain.text
    assert await first_invoice_paid(db, stripe_base, engine_env, plain.json()["subscription_id"]) == 999
    with_code = await subscribe(client, discounted, await make_card(GOOD_CARD), promo_code=code.lower())
    assert with_code.status_code == 201, with_code.text
    assert with_code.json()["status"] == "active"
    assert await first_invoice_paid(db, stripe_base, engine_env, with_code.json()["subscription_id"]) == 500
    shown = await client.get(f"/v1/admin/promo-codes/{code}", headers=admin.headers)
    assert shown.json()["redemption_count"] == 1
    async with db() as session:
        redemption = await session.scalar(select(PromoRedemption).where(PromoRedemption.code == code))
    assert redemption is not None
    assert redemption.discount_cents == 499


async def test_invalid_expired_used_and_switched_off_codes_are_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,  # noqa: F811
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
    make_card: MakeCard,  # noqa: F811
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
    make_card: MakeCard,  # noqa: F811
    stripe_base: str,  # noqa: F811
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
    key = load_settings(engine_env).stripe_api_key
    async with httpx.AsyncClient(base_url=stripe_base, auth=(key, ""), timeout=10) as stripe:
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
