"""Plans, subscriptions, Stripe webhooks and the ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.models import LedgerEntry, Plan, StripeCustomer, Subscription, WebhookEvent
from shared.domain.payments.schemas import (
    CancelResult,
    PaymentCursor,
    PaymentEntry,
    PlanList,
    PlanOut,
    SubscriptionView,
    WebhookAck,
)
from shared.domain.payments.stripe_client import StripeGateway, StripeNotFound
from shared.domain.payments.ticket_models import TicketPayment
from shared.domain.payments.tiers import TIER_RANK
from shared.domain.users.models import User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

log = structlog.get_logger("payments")

# Statuses that grant a plan's benefits; ``past_due`` does not (the renewal failed).
ENTITLED_STATUSES = ("active", "trialing")
# Statuses of a subscription that still belongs to the user (shown, cancellable, blocks a second one).
CURRENT_STATUSES = ("active", "trialing", "past_due", "incomplete", "unpaid")
CUSTOMER_ACCOUNT = "customer"
REVENUE_ACCOUNT = "platform_revenue"


@dataclass(frozen=True)
class PlanSpec:
    """A plan as the platform defines it."""

    id: str
    name: str
    tier: str
    amount_cents: int
    interval: str
    benefits: tuple[str, ...]


PLANS = (
    PlanSpec("plus_monthly", "Plus (monthly)", "plus", 999, "month", ("visibility_boost", "exclusive_events")),
    PlanSpec("plus_yearly", "Plus (yearly)", "plus", 9990, "year", ("visibility_boost", "exclusive_events")),
    PlanSpec(
        "pro_monthly",
        "Pro (monthly)",
        "pro",
        1999,
        "month",
        ("visibility_boost", "exclusive_events", "exclusive_clubs"),
    ),
)
CURRENCY = "usd"


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _period_end(remote: Mapping[str, Any]) -> datetime:
    """The paid-through time: on the item in current Stripe API versions, on the subscription in older ones."""
    items = (remote.get("items") or {}).get("data") or []
    if items and items[0].get("current_period_end"):
        return _ts(items[0]["current_period_end"])
    return _ts(remote["current_period_end"])


def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills: ``parent.subscription_details`` now, ``subscription`` before."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    found = details or invoice.get("subscription")
    return str(found) if found else None


def _plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        name=plan.name,
        tier=plan.tier,
        amount_cents=plan.amount_cents,
        currency=plan.currency,
        interval=plan.interval,
        benefits=list(plan.benefits),
    )


async def refresh_premium_tier(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """Derive ``users.premium_tier`` from the user's entitled subscriptions (the only writer of that column)."""
    rank = case(*((Plan.tier == tier, n) for tier, n in TIER_RANK.items()), else_=0)
    best = (
        select(Plan.tier)
        .join(Subscription, Subscription.plan_id == Plan.id)
        .where(Subscription.user_id == user_id, Subscription.status.in_(ENTITLED_STATUSES))
        .order_by(rank.desc())
        .limit(1)
        .scalar_subquery()
    )
    tier: str | None = await session.scalar(
        update(User).where(User.id == user_id).values(premium_tier=best).returning(User.premium_tier)
    )
    return tier


def _state(sub: Subscription) -> tuple[str, bool, datetime]:
    return sub.status, sub.cancel_at_period_end, sub.current_period_end


async def settle(session: AsyncSession, sub: Subscription, before: tuple[str, bool, datetime] | None = None) -> None:
    """After a subscription was written: re-derive its user's tier and announce a change (none if nothing did)."""
    await session.flush()
    if before is not None and before == _state(sub):
        return
    tier = await refresh_premium_tier(session, sub.user_id)
    if sub.member_tier_id is not None:
        # Imported here because member_tiers builds on this module.
        from shared.domain.payments.member_tiers import sync_tier_access

        await sync_tier_access(session, sub)
    await bus.record(
        session,
        bus.SubscriptionChanged(
            subscription_id=sub.id,
            user_id=sub.user_id,
            status=sub.status,
            cancel_at_period_end=sub.cancel_at_period_end,
            premium_tier=tier,
        ),
    )


class PaymentService:
    """Subscriptions through Stripe, kept in step by signed webhooks, booked in a double-entry ledger."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        stripe: StripeGateway,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._stripe = stripe
        self._clock = clock
        self._seeded = False
        self._seed_lock = asyncio.Lock()

    async def ensure_catalog(self) -> None:
        """Seed the plans into Stripe and locally, once per process (idempotent)."""
        if self._seeded:
            return
        async with self._seed_lock:
            await self._seed_once()

    async def _seed_once(self) -> None:
        # Another task may have seeded while this one waited for the lock.
        if self._seeded:
            return
        for spec in PLANS:
            product_id = f"prod_tribe_{spec.tier}"
            await self._stripe.ensure_product(product_id, f"Tribe {spec.tier.title()}")
            await self._stripe.ensure_plan(spec.id, product_id, spec.amount_cents, CURRENCY, spec.interval)
        async with self._sessions.begin() as session:
            for spec in PLANS:
                values = {
                    "name": spec.name,
                    "tier": spec.tier,
                    "amount_cents": spec.amount_cents,
                    "currency": CURRENCY,
                    "interval": spec.interval,
                    "benefits": list(spec.benefits),
                }
                await session.execute(
                    insert(Plan)
                    .values(id=spec.id, **values)
                    .on_conflict_do_update(index_elements=[Plan.id], set_=values)
                )
        self._seeded = True

    async def list_plans(self) -> PlanList:
        """Every plan, cheapest first."""
        await self.ensure_catalog()
        async with self._sessions() as session:
            plans = (await session.scalars(select(Plan).order_by(Plan.amount_cents, Plan.id))).all()
        return PlanList(items=[_plan_out(p) for p in plans])

    async def customer_for(self, user_id: uuid.UUID) -> str:
        """The user's Stripe customer id, created on first use (subscriptions, boosts, tiers, tickets).

        Committed on its own, so a declined first charge keeps the customer for the retry.
        """
        async with self._sessions.begin() as session:
            existing = await session.scalar(
                select(StripeCustomer.stripe_customer_id).where(StripeCustomer.user_id == user_id)
            )
            if existing is not None:
                return existing
            email = await session.scalar(select(User.email).where(User.id == user_id))
        created = await self._stripe.create_customer(
            email or "", ids.encode(ids.Prefix.USER, user_id), f"customer-{user_id}"
        )
        async with self._sessions.begin() as session:
            await session.execute(
                insert(StripeCustomer)
                .values(user_id=user_id, stripe_customer_id=created)
                .on_conflict_do_nothing(index_elements=[StripeCustomer.user_id])
            )
            winner = await session.scalar(
                select(StripeCustomer.stripe_customer_id).where(StripeCustomer.user_id == user_id)
            )
        return winner or created

    async def _current(self, session: AsyncSession, user_id: uuid.UUID) -> tuple[Subscription, Plan] | None:
        row = (
            await session.execute(
                select(Subscription, Plan)
                .join(Plan, Plan.id == Subscription.plan_id)
                .where(Subscription.user_id == user_id, Subscription.status.in_(CURRENT_STATUSES))
                .order_by(Subscription.id.desc())
                .limit(1)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def get_subscription(self, caller: AccessClaims, user_id: uuid.UUID) -> SubscriptionView:
        """A user's current subscription (yourself, or anyone as an admin)."""
        if user_id != caller.user_id and "admin" not in caller.roles:
            raise NotFound("no such subscription", code="not_found")
        async with self._sessions() as session:
            found = await self._current(session, user_id)
        if found is None:
            raise NotFound("no subscription", code="not_found")
        return _view(*found)

    async def cancel(self, caller: AccessClaims) -> CancelResult:
        """Cancel the caller's subscription at the end of the paid period."""
        sub = await self._set_cancel(caller, cancel=True)
        assert sub.cancel_at is not None
        return CancelResult(
            subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, sub.id), status=sub.status, cancel_at=sub.cancel_at
        )

    async def resume(self, caller: AccessClaims) -> SubscriptionView:
        """Undo a pending cancellation."""
        await self._set_cancel(caller, cancel=False)
        return await self.get_subscription(caller, caller.user_id)

    async def _set_cancel(self, caller: AccessClaims, *, cancel: bool) -> Subscription:
        async with self._sessions.begin() as session:
            found = await self._current(session, caller.user_id)
            if found is None:
                raise NotFound("no subscription", code="not_found")
            sub = found[0]
            await session.execute(select(Subscription.id).where(Subscription.id == sub.id).with_for_update())
            if sub.cancel_at_period_end == cancel:
                if sub.cancel_at_period_end:
                    return sub
                raise Conflict("the subscription is not set to cancel", code="not_cancelling")
            remote = await self._stripe.set_cancel_at_period_end(
                sub.stripe_subscription_id, cancel, f"cancel-{sub.id}-{int(cancel)}-{self._clock().timestamp():.0f}"
            )
            sub.cancel_at_period_end = cancel
            sub.cancel_at = sub.current_period_end if cancel else None
            sub.status = str(remote.status)
            await settle(session, sub)
            return sub

    async def handle_webhook(self, payload: bytes, signature: str | None) -> WebhookAck:
        """Verify, record once, and apply a Stripe event."""
        event = self._stripe.verify_event(payload, signature)
        etype = str(event.type)
        obj: Mapping[str, Any] = event.data.object.to_dict()
        created = int(event.created)
        remote_sub: Any = None
        gone = False
        refunded_invoice: Mapping[str, Any] | None = None
        if etype.startswith("customer.subscription."):
            # Order matters for subscription state: ask Stripe for the object as it is now.
            try:
                remote_sub = await self._stripe.retrieve_subscription(str(obj["id"]))
            except StripeNotFound:
                gone = True
        ticket_charge = etype == "charge.refunded" and await self._pays_a_ticket(obj)
        if etype == "charge.refunded" and not ticket_charge:
            # Stripe calls stay outside the transaction; the invoice tells whose money is refunded.
            refunded_invoice = await self._invoice_of_charge(obj)
        async with self._sessions.begin() as session:
            first = await session.scalar(
                insert(WebhookEvent)
                .values(id=str(event.id), type=etype, created=created, received_at=self._clock())
                .on_conflict_do_nothing(index_elements=[WebhookEvent.id])
                .returning(WebhookEvent.id)
            )
            if first is None:
                return WebhookAck(received=True, duplicate=True)
            if etype.startswith("customer.subscription."):
                await self._apply_subscription(
                    session, str(obj["id"]), created, remote_sub, gone or etype.endswith("deleted")
                )
            elif etype == "invoice.payment_succeeded":
                await self._invoice_paid(session, obj, created)
            elif etype == "invoice.payment_failed":
                await self._invoice_failed(session, obj, created)
            elif etype == "charge.refunded" and not ticket_charge:
                await self._charge_refunded(session, obj, refunded_invoice)
            else:
                # payment_intent.* for subscriptions is covered by the invoice events; the
                # PaymentIntents of boosts and tickets belong to the events feature.
                log.info("stripe event recorded", type=etype, id=str(event.id))
        return WebhookAck(received=True, duplicate=False)

    async def _locked_sub(self, session: AsyncSession, stripe_id: str) -> Subscription | None:
        return (
            await session.scalars(
                select(Subscription).where(Subscription.stripe_subscription_id == stripe_id).with_for_update()
            )
        ).first()

    async def _apply_subscription(
        self, session: AsyncSession, stripe_id: str, created: int, remote: Any, deleted: bool
    ) -> None:
        sub = await self._locked_sub(session, stripe_id)
        if sub is None or created < sub.last_event_at:
            return
        sub.last_event_at = created
        before = _state(sub)
        if deleted or remote is None:
            sub.status = "canceled"
        else:
            sub.status = str(remote.status)
            sub.current_period_end = max(sub.current_period_end, _period_end(remote.to_dict()))
            sub.cancel_at_period_end = bool(remote["cancel_at_period_end"])
            sub.cancel_at = sub.current_period_end if sub.cancel_at_period_end else None
        await settle(session, sub, before)

    async def _invoice_paid(self, session: AsyncSession, invoice: Mapping[str, Any], created: int) -> None:
        stripe_sub = _invoice_subscription(invoice)
        sub = await self._locked_sub(session, stripe_sub) if stripe_sub else None
        user_id = sub.user_id if sub else await self._user_of_customer(session, invoice.get("customer"))
        amount = int(invoice.get("amount_paid") or 0)
        if amount > 0 and sub is not None and sub.member_tier_id is not None:
            # A creator's or club's tier: the creator earns it, less the platform fee.
            from shared.domain.payments.member_tiers import book_tier_invoice

            await book_tier_invoice(
                session, sub, str(invoice["id"]), amount, str(invoice.get("currency") or CURRENCY), self._clock()
            )
        elif amount > 0:
            await self._book(
                session,
                kind="charge",
                source_ref=str(invoice["id"]),
                user_id=user_id,
                amount=amount,
                currency=str(invoice.get("currency") or CURRENCY),
                description=f"subscription invoice {invoice['id']}",
            )
        if sub is None or created < sub.last_event_at:
            return
        sub.last_event_at = created
        before = _state(sub)
        sub.status = "active"
        period_end = _invoice_period_end(invoice)
        if period_end is not None:
            sub.current_period_end = max(sub.current_period_end, period_end)
        await settle(session, sub, before)

    async def _invoice_failed(self, session: AsyncSession, invoice: Mapping[str, Any], created: int) -> None:
        stripe_sub = _invoice_subscription(invoice)
        sub = await self._locked_sub(session, stripe_sub) if stripe_sub else None
        if sub is None or created < sub.last_event_at:
            return
        sub.last_event_at = created
        before = _state(sub)
        sub.status = "past_due"
        await settle(session, sub, before)

    async def _pays_a_ticket(self, charge: Mapping[str, Any]) -> bool:
        """Whether a charge paid a ticket, whose refunds shared.domain.payments.tickets books (organizer and fee legs).

        The charge alone does not say: the ticket may not know its PaymentIntent yet (a webhook ahead of
        the API's own answer), so the PaymentIntent's metadata is asked for when the ticket rows do not tell.
        """
        intent_id = charge.get("payment_intent")
        if not intent_id or charge.get("invoice"):
            return False
        async with self._sessions() as session:
            known = await session.scalar(
                select(TicketPayment.id).where(TicketPayment.stripe_payment_intent_id == str(intent_id))
            )
        if known is not None:
            return True
        try:
            intent = await self._stripe.retrieve_payment_intent(str(intent_id))
        except StripeNotFound:
            return False
        return bool((intent.get("metadata") or {}).get("ticket_payment_id"))

    async def _invoice_of_charge(self, charge: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The invoice a refunded charge paid (``None`` for boosts and tickets, which are not invoiced)."""
        invoice_id = charge.get("invoice")
        intent = charge.get("payment_intent")
        if not invoice_id and intent:
            try:
                invoice_id = await self._stripe.invoice_of_payment_intent(str(intent))
            except StripeNotFound:
                return None
        if not invoice_id:
            return None
        try:
            return await self._stripe.retrieve_invoice(str(invoice_id))
        except StripeNotFound:
            return None

    async def _charge_refunded(
        self, session: AsyncSession, charge: Mapping[str, Any], invoice: Mapping[str, Any] | None
    ) -> None:
        refunded = int(charge.get("amount_refunded") or 0)
        if refunded <= 0:
            return
        # Two refund events of one charge (a partial, then the rest) must not both book the same part.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"refund:{charge['id']}"}
        )
        currency = str(charge.get("currency") or CURRENCY)
        stripe_sub = _invoice_subscription(invoice) if invoice is not None else None
        sub = await self._locked_sub(session, stripe_sub) if stripe_sub else None
        if invoice is not None and sub is not None and sub.member_tier_id is not None:
            # A creator's or club's tier: the creator (not the platform) gives the money back, less the fee.
            from shared.domain.payments.member_tiers import book_tier_refund

            await book_tier_refund(session, sub, invoice, str(charge["id"]), refunded, currency, self._clock())
            return
        user_id = await self._user_of_customer(session, charge.get("customer"))
        already = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
                LedgerEntry.kind == "refund",
                LedgerEntry.account == REVENUE_ACCOUNT,
                LedgerEntry.source_ref.like(f"{charge['id']}:%"),
            )
        )
        # Revenue legs of refunds are negative; a partial refund books only what is new.
        delta = refunded + int(already or 0)
        if delta <= 0:
            return
        await self._book(
            session,
            kind="refund",
            source_ref=f"{charge['id']}:{refunded}",
            user_id=user_id,
            amount=-delta,
            currency=currency,
            description=f"refund of charge {charge['id']}",
        )

    async def _user_of_customer(self, session: AsyncSession, customer: Any) -> uuid.UUID | None:
        if not customer:
            return None
        return await session.scalar(
            select(StripeCustomer.user_id).where(StripeCustomer.stripe_customer_id == str(customer))
        )

    async def _book(
        self,
        session: AsyncSession,
        *,
        kind: str,
        source_ref: str,
        user_id: uuid.UUID | None,
        amount: int,
        currency: str,
        description: str,
    ) -> None:
        """Two legs that sum to zero: the customer pays ``amount`` to the platform (negative for refunds)."""
        transaction_id = ids.uuid7()
        now = self._clock()
        legs: list[dict[str, Any]] = [
            {"account": CUSTOMER_ACCOUNT, "user_id": user_id, "amount_cents": -amount},
            {"account": REVENUE_ACCOUNT, "user_id": None, "amount_cents": amount},
        ]
        await session.execute(
            insert(LedgerEntry)
            .values(
                [
                    {
                        "id": ids.uuid7(),
                        "transaction_id": transaction_id,
                        "kind": kind,
                        "currency": currency,
                        "source_ref": source_ref,
                        "description": description,
                        "created_at": now,
                        **leg,
                    }
                    for leg in legs
                ]
            )
            .on_conflict_do_nothing(index_elements=["source_ref", "kind", "account"])
        )

    async def list_payments(self, caller: AccessClaims, cursor: str | None, limit: int | None) -> Page[PaymentEntry]:
        """The caller's own money movements, newest first."""
        size = clamp_limit(limit)
        query = select(LedgerEntry).where(
            LedgerEntry.user_id == caller.user_id, LedgerEntry.account == CUSTOMER_ACCOUNT
        )
        if cursor is not None:
            after = decode_cursor(cursor, PaymentCursor)
            try:
                query = query.where(LedgerEntry.id < ids.decode(ids.Prefix.PAYMENT, after.id))
            except ids.InvalidId:
                raise InvalidInput(code="invalid_cursor", errors=[FieldError("cursor", "invalid")]) from None
        async with self._sessions() as session:
            rows = (await session.scalars(query.order_by(LedgerEntry.id.desc()).limit(size + 1))).all()
        items = [
            PaymentEntry(
                id=ids.encode(ids.Prefix.PAYMENT, row.id),
                transaction_id=ids.encode(ids.Prefix.TRANSACTION, row.transaction_id),
                kind=row.kind,
                # The caller's leg is negative when they pay; show what they paid as positive.
                amount_cents=-row.amount_cents,
                currency=row.currency,
                description=row.description,
                created_at=row.created_at,
            )
            for row in rows
        ]
        return make_page(items, size, lambda e: PaymentCursor(id=e.id))


def _invoice_period_end(invoice: Mapping[str, Any]) -> datetime | None:
    lines = (invoice.get("lines") or {}).get("data") or []
    ends = [int(line["period"]["end"]) for line in lines if line.get("period", {}).get("end")]
    return _ts(max(ends)) if ends else None


def _view(sub: Subscription, plan: Plan) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, sub.id),
        plan_id=plan.id,
        tier=plan.tier,
        status=sub.status,
        renewal_date=sub.current_period_end.date(),
        cancel_at_period_end=sub.cancel_at_period_end,
        cancel_at=sub.cancel_at,
        benefits=list(plan.benefits),
    )
