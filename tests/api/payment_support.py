"""Payments in API tests: cards and reads in localstripe, Stripe's signed webhooks, plans, promo codes, the ledger."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.payments.models import LedgerEntry, Subscription

if TYPE_CHECKING:
    # Only for annotations: conftest builds its card fixture from this module.
    from tests.api.conftest import Account, MakeAccount

GOOD_CARD = "4242424242424242"
# Refused as soon as it is attached.
DECLINED_CARD = "4000000000000002"
# Attaches fine, then every charge is declined (Stripe's test card for a decline at payment time).
CHARGE_DECLINED_CARD = "4000000000000341"
# localstripe asks for 3-D Secure on this card, as Stripe does.
AUTH_CARD = "4000002500003155"

MakeCard = Callable[[str], Awaitable[str]]


def stripe_client(engine_env: dict[str, str]) -> httpx.AsyncClient:
    """A client of localstripe with the API's key, for what a mobile SDK, Stripe's dashboard or Stripe does."""
    settings = load_settings(engine_env)
    return httpx.AsyncClient(base_url=settings.stripe_api_base, auth=(settings.stripe_api_key, ""), timeout=10)


async def create_card(engine_env: dict[str, str], number: str) -> str:
    """A card payment method made in localstripe, as a mobile client would with Stripe's SDK."""
    async with stripe_client(engine_env) as stripe:
        created = await stripe.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


async def stripe_get(engine_env: dict[str, str], path: str) -> dict[str, Any]:
    """A GET against localstripe with the API key."""
    async with stripe_client(engine_env) as stripe:
        response = await stripe.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header as Stripe computes it."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def stripe_event(etype: str, obj: dict[str, Any], created: int) -> bytes:
    """An event body shaped like Stripe's."""
    body = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": etype,
        "created": created,
        "livemode": False,
        "api_version": "2020-08-27",
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


async def deliver(client: httpx.AsyncClient, payload: bytes, secret: str) -> httpx.Response:
    """POST a signed webhook to the API."""
    return await client.post(
        "/v1/payments/webhook",
        content=payload,
        headers={"Stripe-Signature": sign(payload, secret), "Content-Type": "application/json"},
    )


async def subscribe(
    client: httpx.AsyncClient, account: Account, pm: str, plan: str = "plus_monthly", **extra: Any
) -> httpx.Response:
    """POST /v1/payments/subscribe for ``account``."""
    headers = {**account.headers, **extra.pop("headers", {})}
    body = {"user_id": account.id, "plan_id": plan, "payment_method_id": pm, **extra}
    return await client.post("/v1/payments/subscribe", json=body, headers=headers)


async def stripe_subscription_id(db: async_sessionmaker[AsyncSession], public_id: str) -> str:
    """The Stripe id behind a local subscription."""
    async with db() as session:
        value = await session.scalar(
            select(Subscription.stripe_subscription_id).where(
                Subscription.id == ids.decode(ids.Prefix.SUBSCRIPTION, public_id)
            )
        )
    assert value is not None
    return value


async def first_invoice_paid(db: async_sessionmaker[AsyncSession], engine_env: dict[str, str], public_id: str) -> int:
    """What Stripe charged on a subscription's first invoice."""
    remote = await stripe_get(engine_env, f"/v1/subscriptions/{await stripe_subscription_id(db, public_id)}")
    invoice = await stripe_get(engine_env, f"/v1/invoices/{remote['latest_invoice']}")
    return int(invoice["amount_paid"])


async def premium_tier(client: httpx.AsyncClient, account: Account) -> str | None:
    """The caller's derived premium tier."""
    me = await client.get("/v1/users/me", headers=account.headers)
    assert me.status_code == 200, me.text
    tier: str | None = me.json()["premium_tier"]
    return tier


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
    """A promo code no other test uses."""
    return f"T{uuid.uuid4().hex[:10].upper()}"


async def create_code(client: httpx.AsyncClient, admin: Account, **body: Any) -> httpx.Response:
    """POST /v1/admin/promo-codes."""
    return await client.post("/v1/admin/promo-codes", json=body, headers=admin.headers)


async def ledger_is_balanced(db: async_sessionmaker[AsyncSession]) -> bool:
    """Every ledger transaction, and so the whole ledger, sums to zero."""
    async with db() as session:
        unbalanced = (
            await session.execute(
                select(LedgerEntry.transaction_id)
                .group_by(LedgerEntry.transaction_id)
                .having(func.sum(LedgerEntry.amount_cents) != 0)
            )
        ).all()
        total = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)))
    return unbalanced == [] and total == 0


async def ledger_legs(db: async_sessionmaker[AsyncSession], source_ref_prefix: str) -> list[LedgerEntry]:
    """Ledger entries whose ``source_ref`` starts with ``source_ref_prefix`` (a ticket, a charge ...), oldest first."""
    async with db() as session:
        query = select(LedgerEntry).where(LedgerEntry.source_ref.startswith(source_ref_prefix, autoescape=True))
        return list(await session.scalars(query.order_by(LedgerEntry.id)))
