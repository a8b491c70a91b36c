"""Promo codes: admins define them, subscribers redeem each once, and the cap holds under concurrency.

A code takes ``percent_off`` off the first invoice of a plan subscription. The discount is a
negative pending invoice item on the customer, which Stripe (and localstripe, which does not apply
coupons to subscriptions) bills on the subscription's first invoice, so the amount charged really
changes. The cap is enforced by a conditional ``UPDATE`` of ``redemption_count`` plus a CHECK
constraint, and one redemption per user by a unique constraint.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec
import structlog
from sqlalchemy import ColumnElement, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.models import Plan, PromoCode, PromoRedemption, Subscription
from shared.domain.payments.schemas import SubscribeRequest, SubscribeResult
from shared.domain.payments.services import CURRENCY, ENTITLED_STATUSES, PaymentService, _period_end, settle
from shared.domain.payments.stripe_client import StripeGateway
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PaymentFailed, PermissionDenied

log = structlog.get_logger("payments.promos")

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,39}$")
INVALID_PROMO = "invalid_promo_code"


class PromoCodeCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new promo code (admins): upper-case letters, digits, ``-`` and ``_``."""

    code: str
    percent_off: int
    max_redemptions: int | None = None
    expires_at: datetime | None = None


class PromoCodeUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Switch a code on or off (admins)."""

    active: bool


class PromoCodeView(msgspec.Struct, frozen=True):
    """A promo code and how often it was used."""

    code: str
    percent_off: int
    max_redemptions: int | None
    redemption_count: int
    expires_at: datetime | None
    active: bool


class PromoCodeList(msgspec.Struct, frozen=True):
    """Every promo code, newest first."""

    items: list[PromoCodeView]


def _view(promo: PromoCode) -> PromoCodeView:
    return PromoCodeView(
        code=promo.code,
        percent_off=promo.percent_off,
        max_redemptions=promo.max_redemptions,
        redemption_count=promo.redemption_count,
        expires_at=promo.expires_at,
        active=promo.active,
    )


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code=INVALID_PROMO, errors=[FieldError("promo_code", detail)])


def discount_cents(amount_cents: int, percent_off: int) -> int:
    """What ``percent_off`` takes off ``amount_cents`` (rounded down, in the customer's favour never below 0)."""
    return amount_cents * percent_off // 100


class PromoService:
    """Admin verbs over promo codes, and the plan subscription that redeems them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        stripe: StripeGateway,
        payments: PaymentService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._stripe = stripe
        self._payments = payments
        self._clock = clock

    # ---- admin ----------------------------------------------------------------------------

    @staticmethod
    def _admin(caller: AccessClaims) -> None:
        if "admin" not in caller.roles:
            raise PermissionDenied("promo codes are managed by admins", code="forbidden")

    async def create(self, caller: AccessClaims, data: PromoCodeCreate) -> PromoCodeView:
        """Define a code; 409 ``promo_code_exists`` when it is taken."""
        self._admin(caller)
        code = data.code.strip().upper()
        errors: list[FieldError] = []
        if not CODE_PATTERN.match(code):
            errors.append(FieldError("code", "3 to 40 letters, digits, - or _"))
        if not 1 <= data.percent_off <= 100:
            errors.append(FieldError("percent_off", "must be 1 to 100"))
        if data.max_redemptions is not None and data.max_redemptions < 1:
            errors.append(FieldError("max_redemptions", "must be at least 1"))
        if data.expires_at is not None and (data.expires_at.tzinfo is None or data.expires_at <= self._clock()):
            errors.append(FieldError("expires_at", "must be a future time with a time zone"))
        if errors:
            raise InvalidInput(errors=errors)
        async with self._sessions.begin() as session:
            created = await session.scalar(
                insert(PromoCode)
                .values(
                    code=code,
                    percent_off=data.percent_off,
                    max_redemptions=data.max_redemptions,
                    expires_at=data.expires_at,
                )
                .on_conflict_do_nothing(index_elements=[PromoCode.code])
                .returning(PromoCode)
            )
            if created is None:
                raise Conflict("that promo code exists", code="promo_code_exists")
            return _view(created)

    async def list_codes(self, caller: AccessClaims) -> PromoCodeList:
        """Every code (admins)."""
        self._admin(caller)
        async with self._sessions() as session:
            rows = await session.scalars(select(PromoCode).order_by(PromoCode.created_at.desc(), PromoCode.code))
            return PromoCodeList(items=[_view(p) for p in rows])

    async def get(self, caller: AccessClaims, code: str) -> PromoCodeView:
        """One code (admins)."""
        self._admin(caller)
        async with self._sessions() as session:
            promo = await session.get(PromoCode, code.strip().upper())
        if promo is None:
            raise NotFound("no such promo code", code="not_found")
        return _view(promo)

    async def update(self, caller: AccessClaims, code: str, data: PromoCodeUpdate) -> PromoCodeView:
        """Turn a code on or off (admins)."""
        self._admin(caller)
        async with self._sessions.begin() as session:
            promo = await session.scalar(
                update(PromoCode)
                .where(PromoCode.code == code.strip().upper())
                .values(active=data.active)
                .returning(PromoCode)
            )
            if promo is None:
                raise NotFound("no such promo code", code="not_found")
            return _view(promo)

    # ---- redeeming -------------------------------------------------------------------------

    def _usable(self, now: datetime) -> list[ColumnElement[bool]]:
        return [
            PromoCode.active.is_(True),
            or_(PromoCode.expires_at.is_(None), PromoCode.expires_at > now),
            or_(PromoCode.max_redemptions.is_(None), PromoCode.redemption_count < PromoCode.max_redemptions),
        ]

    async def _precheck(self, code: str, user_id: uuid.UUID) -> PromoCode:
        """Refuse an unusable code before anything is charged (the redemption re-checks under a lock)."""
        now = self._clock()
        async with self._sessions() as session:
            promo = await session.get(PromoCode, code)
            used = await session.scalar(
                select(PromoRedemption.id).where(PromoRedemption.code == code, PromoRedemption.user_id == user_id)
            )
        if promo is None or not promo.active:
            raise _invalid("unknown or inactive promo code")
        if promo.expires_at is not None and promo.expires_at <= now:
            raise _invalid("this promo code has expired")
        if promo.max_redemptions is not None and promo.redemption_count >= promo.max_redemptions:
            raise _invalid("this promo code has been used up")
        if used is not None:
            raise _invalid("you have already used this promo code")
        return promo

    async def _redeem(self, session: AsyncSession, code: str, user_id: uuid.UUID) -> tuple[PromoCode, uuid.UUID]:
        """Count one use (conditional update, so the cap holds) and record it; 422 if the code ran out."""
        promo = await session.scalar(
            update(PromoCode)
            .where(PromoCode.code == code, *self._usable(self._clock()))
            .values(redemption_count=PromoCode.redemption_count + 1)
            .returning(PromoCode)
        )
        if promo is None:
            raise _invalid("this promo code is no longer valid")
        redemption_id = ids.uuid7()
        try:
            async with session.begin_nested():
                session.add(
                    PromoRedemption(
                        id=redemption_id, code=code, user_id=user_id, discount_cents=0, created_at=self._clock()
                    )
                )
                await session.flush()
        except IntegrityError:
            raise _invalid("you have already used this promo code") from None
        return promo, redemption_id

    async def subscribe(self, caller: AccessClaims, data: SubscribeRequest) -> SubscribeResult:
        """``POST /v1/payments/subscribe``: the plan subscription with promo codes and 3-D Secure.

        A card that needs authentication leaves the subscription ``incomplete`` with the first
        payment's ``client_secret`` for the app to confirm; a webhook activates it afterwards.
        """
        try:
            user_id = ids.decode(ids.Prefix.USER, data.user_id)
        except ids.InvalidId:
            raise InvalidInput(errors=[FieldError("user_id", "not a user id")]) from None
        if user_id != caller.user_id:
            raise PermissionDenied("you can only subscribe yourself", code="forbidden")
        await self._payments.ensure_catalog()
        async with self._sessions() as session:
            plan = await session.get(Plan, data.plan_id)
        if plan is None:
            raise NotFound("no such plan", code="plan_not_found")
        code = data.promo_code.strip().upper() if data.promo_code is not None else None
        if code is not None:
            await self._precheck(code, user_id)
        customer_id = await self._payments.customer_for(user_id)
        credit_id: str | None = None
        async with self._sessions.begin() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"subscribe:{user_id}"}
            )
            current = await session.scalar(
                select(Subscription.id).where(
                    Subscription.user_id == user_id,
                    Subscription.plan_id.is_not(None),
                    Subscription.status.in_(ENTITLED_STATUSES),
                )
            )
            if current is not None:
                raise Conflict("you already have an active subscription", code="already_subscribed")
            local_id = ids.uuid7()
            key = f"subscribe-{local_id}"
            await self._stripe.set_default_payment_method(customer_id, data.payment_method_id, key)
            redemption: tuple[PromoCode, uuid.UUID] | None = None
            discount = 0
            if code is not None:
                redemption = await self._redeem(session, code, user_id)
                discount = discount_cents(plan.amount_cents, redemption[0].percent_off)
                if discount > 0:
                    credit_id = await self._stripe.add_invoice_credit(
                        customer_id, discount, CURRENCY, f"promo code {code}", f"{key}-promo"
                    )
            metadata = {"user_id": ids.encode(ids.Prefix.USER, user_id), "plan_id": plan.id}
            if code is not None:
                metadata["promo_code"] = code
            try:
                remote = await self._stripe.create_subscription_awaiting_action(customer_id, plan.id, metadata, key)
            except PaymentFailed:
                # The credit must not discount some later invoice; the redemption rolls back with this transaction.
                if credit_id is not None:
                    await self._stripe.remove_invoice_item(credit_id)
                raise
            sub = Subscription(
                id=local_id,
                user_id=user_id,
                plan_id=plan.id,
                stripe_subscription_id=remote.id,
                stripe_idempotency_key=key,
                status=str(remote.status),
                current_period_end=_period_end(remote.to_dict()),
                cancel_at_period_end=bool(remote["cancel_at_period_end"]),
                promo_code=code,
            )
            session.add(sub)
            await session.flush()
            if redemption is not None:
                await session.execute(
                    update(PromoRedemption)
                    .where(PromoRedemption.id == redemption[1])
                    .values(subscription_id=local_id, discount_cents=discount)
                )
            await settle(session, sub)
        client_secret = await self._stripe.subscription_client_secret(remote) if sub.status == "incomplete" else None
        log.info("subscription created", subscription=remote.id, status=sub.status, plan=plan.id, promo=code)
        return SubscribeResult(
            subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, local_id),
            status=sub.status,
            renewal_date=sub.current_period_end.date(),
            client_secret=client_secret,
        )
