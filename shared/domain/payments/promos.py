"""Promo codes: admins, creators and club owners define them; each is redeemed once per user, capped in the DB.

A code takes ``percent_off`` off the first invoice of a subscription. The discount is a negative
pending invoice item on the customer, which Stripe (and localstripe, which does not apply coupons
to subscriptions) bills on the subscription's first invoice, so the amount charged really changes.
The cap is enforced by a conditional ``UPDATE`` of ``redemption_count`` plus a CHECK constraint,
and one redemption per user by a unique constraint.

Scope (who funds the discount is who sells the thing):

- a platform code (made by an admin, no owner) discounts only the platform's plans. It does not
  apply to creator or club tiers: the platform would have to pay the creator the discount out of a
  5 % fee, so every redemption would lose money, and the creator's earnings would no longer be
  what the subscriber paid;
- a creator's code discounts only that creator's own tiers, a club code only that club's tiers.
  The creator funds it: the invoice is smaller, and the ledger books what was actually paid, so the
  creator's earnings and the platform's fee are both taken from the discounted amount.

A code used outside its scope is refused like an unknown one (422 ``invalid_promo_code``), before
anything is charged, and re-checked in the redeeming ``UPDATE``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec
import stripe
import structlog
from sqlalchemy import ColumnElement, and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.models import Plan, PromoCode, PromoRedemption, Subscription
from shared.domain.payments.owners import require_club_owner, require_self
from shared.domain.payments.schemas import SubscribeRequest, SubscribeResult
from shared.domain.payments.services import CURRENCY, ENTITLED_STATUSES, PaymentService, _period_end, settle
from shared.domain.payments.stripe_client import StripeGateway
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PaymentFailed, PermissionDenied

log = structlog.get_logger("payments.promos")

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,39}$")
INVALID_PROMO = "invalid_promo_code"


class PromoCodeCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new promo code: upper-case letters, digits, ``-`` and ``_``."""

    code: str
    percent_off: int
    max_redemptions: int | None = None
    expires_at: datetime | None = None


class PromoCodeUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Switch a code on or off."""

    active: bool


class PromoCodeView(msgspec.Struct, frozen=True):
    """A promo code, what it applies to (no owner: the platform's plans) and how often it was used."""

    code: str
    percent_off: int
    max_redemptions: int | None
    redemption_count: int
    expires_at: datetime | None
    active: bool
    owner_id: str | None
    club_id: str | None


class PromoCodeList(msgspec.Struct, frozen=True):
    """Promo codes, newest first."""

    items: list[PromoCodeView]


@dataclass(frozen=True)
class PromoScope:
    """What a code may discount: the platform's plans (no owner), a creator's own tiers, or one club's tiers."""

    owner_id: uuid.UUID | None = None
    club_id: uuid.UUID | None = None

    def condition(self) -> ColumnElement[bool]:
        """SQL: the code belongs to this scope."""
        if self.club_id is not None:
            return PromoCode.club_id == self.club_id
        if self.owner_id is not None:
            return and_(PromoCode.owner_id == self.owner_id, PromoCode.club_id.is_(None))
        return PromoCode.owner_id.is_(None)

    def admits(self, promo: PromoCode) -> bool:
        """The same test on a loaded code."""
        if self.club_id is not None:
            return promo.club_id == self.club_id
        return promo.owner_id == self.owner_id and promo.club_id is None


PLATFORM = PromoScope()


@dataclass(frozen=True)
class Redemption:
    """A code counted against its cap for one new subscription, and the credit it put on the first invoice."""

    id: uuid.UUID
    code: str
    discount_cents: int


def _view(promo: PromoCode) -> PromoCodeView:
    return PromoCodeView(
        code=promo.code,
        percent_off=promo.percent_off,
        max_redemptions=promo.max_redemptions,
        redemption_count=promo.redemption_count,
        expires_at=promo.expires_at,
        active=promo.active,
        owner_id=ids.encode(ids.Prefix.USER, promo.owner_id) if promo.owner_id else None,
        club_id=ids.encode(ids.Prefix.CLUB, promo.club_id) if promo.club_id else None,
    )


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code=INVALID_PROMO, errors=[FieldError("promo_code", detail)])


def normalize_code(code: str | None) -> str | None:
    """Codes are case-insensitive: stored and matched upper-case."""
    return code.strip().upper() if code is not None else None


def discount_cents(amount_cents: int, percent_off: int) -> int:
    """What ``percent_off`` takes off ``amount_cents`` (rounded down, in the customer's favour never below 0)."""
    return amount_cents * percent_off // 100


class PromoService:
    """Promo code management (admins for the platform, creators and club owners for their tiers) and redemption."""

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

    # ---- managing codes ---------------------------------------------------------------------

    @staticmethod
    def _admin(caller: AccessClaims) -> None:
        if "admin" not in caller.roles:
            raise PermissionDenied("promo codes are managed by admins", code="forbidden")

    async def _owned_scope(
        self, caller: AccessClaims, user_id: uuid.UUID | None, club_id: uuid.UUID | None
    ) -> PromoScope:
        """The scope of a creator's (``user_id``) or a club owner's (``club_id``) codes, if the caller may manage it."""
        if club_id is not None:
            await require_club_owner(self._sessions, caller, club_id, "promo codes")
            return PromoScope(owner_id=caller.user_id, club_id=club_id)
        assert user_id is not None
        require_self(caller, user_id, "promo codes")
        return PromoScope(owner_id=caller.user_id)

    async def create(self, caller: AccessClaims, data: PromoCodeCreate) -> PromoCodeView:
        """A platform code (admins); 409 ``promo_code_exists`` when it is taken."""
        self._admin(caller)
        return await self._create(PLATFORM, data)

    async def create_owned(
        self, caller: AccessClaims, data: PromoCodeCreate, *, user_id: uuid.UUID | None, club_id: uuid.UUID | None
    ) -> PromoCodeView:
        """A code for the caller's own tiers (``user_id``, yourself) or a club's tiers (``club_id``, its owner)."""
        return await self._create(await self._owned_scope(caller, user_id, club_id), data)

    async def _create(self, scope: PromoScope, data: PromoCodeCreate) -> PromoCodeView:
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
                    owner_id=scope.owner_id,
                    club_id=scope.club_id,
                )
                .on_conflict_do_nothing(index_elements=[PromoCode.code])
                .returning(PromoCode)
            )
            if created is None:
                raise Conflict("that promo code exists", code="promo_code_exists")
            return _view(created)

    async def list_codes(self, caller: AccessClaims) -> PromoCodeList:
        """Every code, the creators' too (admins)."""
        self._admin(caller)
        return await self._list(None)

    async def list_owned(
        self, caller: AccessClaims, *, user_id: uuid.UUID | None, club_id: uuid.UUID | None
    ) -> PromoCodeList:
        """A creator's or a club's codes (the creator, the club's owner)."""
        return await self._list(await self._owned_scope(caller, user_id, club_id))

    async def _list(self, scope: PromoScope | None) -> PromoCodeList:
        query = select(PromoCode).order_by(PromoCode.created_at.desc(), PromoCode.code)
        if scope is not None:
            query = query.where(scope.condition())
        async with self._sessions() as session:
            return PromoCodeList(items=[_view(p) for p in await session.scalars(query)])

    async def get(self, caller: AccessClaims, code: str) -> PromoCodeView:
        """One code (admins)."""
        self._admin(caller)
        async with self._sessions() as session:
            promo = await session.get(PromoCode, code.strip().upper())
        if promo is None:
            raise NotFound("no such promo code", code="not_found")
        return _view(promo)

    async def update(self, caller: AccessClaims, code: str, data: PromoCodeUpdate) -> PromoCodeView:
        """Turn any code on or off (admins)."""
        self._admin(caller)
        return await self._update(None, code, data)

    async def update_owned(
        self,
        caller: AccessClaims,
        code: str,
        data: PromoCodeUpdate,
        *,
        user_id: uuid.UUID | None,
        club_id: uuid.UUID | None,
    ) -> PromoCodeView:
        """Turn one of a creator's or a club's codes on or off; someone else's code is 404."""
        return await self._update(await self._owned_scope(caller, user_id, club_id), code, data)

    async def _update(self, scope: PromoScope | None, code: str, data: PromoCodeUpdate) -> PromoCodeView:
        query = update(PromoCode).where(PromoCode.code == code.strip().upper())
        if scope is not None:
            query = query.where(scope.condition())
        async with self._sessions.begin() as session:
            promo = await session.scalar(query.values(active=data.active).returning(PromoCode))
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

    async def precheck(self, code: str, user_id: uuid.UUID, scope: PromoScope) -> PromoCode:
        """Refuse an unusable or foreign code before anything is charged (the redemption re-checks under a lock)."""
        now = self._clock()
        async with self._sessions() as session:
            promo = await session.get(PromoCode, code)
            used = await session.scalar(
                select(PromoRedemption.id).where(PromoRedemption.code == code, PromoRedemption.user_id == user_id)
            )
        if promo is None or not promo.active:
            raise _invalid("unknown or inactive promo code")
        if not scope.admits(promo):
            raise _invalid("this promo code does not apply to this purchase")
        if promo.expires_at is not None and promo.expires_at <= now:
            raise _invalid("this promo code has expired")
        if promo.max_redemptions is not None and promo.redemption_count >= promo.max_redemptions:
            raise _invalid("this promo code has been used up")
        if used is not None:
            raise _invalid("you have already used this promo code")
        return promo

    async def _redeem(
        self, session: AsyncSession, code: str, user_id: uuid.UUID, scope: PromoScope
    ) -> tuple[PromoCode, uuid.UUID]:
        """Count one use (conditional update, so the cap holds) and record it; 422 if the code ran out."""
        promo = await session.scalar(
            update(PromoCode)
            .where(PromoCode.code == code, scope.condition(), *self._usable(self._clock()))
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

    async def start_subscription(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        customer_id: str,
        code: str | None,
        scope: PromoScope,
        amount_cents: int,
        key: str,
        create: Callable[[], Awaitable[stripe.Subscription]],
    ) -> tuple[stripe.Subscription, Redemption | None]:
        """Redeem ``code`` (if any) inside ``session``, credit its discount, then ``create`` the Stripe subscription.

        Plan and tier subscriptions both start here. A pending credit lands on the customer's next
        invoice, whichever subscription bills it, so the user's subscription creates are serialized
        by a lock: a creator's discount cannot end up on another creator's (or the platform's) invoice.
        If the card is declined the credit is withdrawn, and the redemption rolls back with ``session``.
        """
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"first-invoice:{user_id}"}
        )
        redemption: Redemption | None = None
        credit_id: str | None = None
        if code is not None:
            promo, redemption_id = await self._redeem(session, code, user_id, scope)
            discount = discount_cents(amount_cents, promo.percent_off)
            if discount > 0:
                credit_id = await self._stripe.add_invoice_credit(
                    customer_id, discount, CURRENCY, f"promo code {code}", f"{key}-promo"
                )
            redemption = Redemption(id=redemption_id, code=code, discount_cents=discount)
        try:
            remote = await create()
        except PaymentFailed:
            # The credit must not discount some later invoice.
            if credit_id is not None:
                await self._stripe.remove_invoice_item(credit_id)
            raise
        return remote, redemption

    @staticmethod
    async def link_redemption(session: AsyncSession, redemption: Redemption | None, subscription_id: uuid.UUID) -> None:
        """Tie a redemption to the subscription it discounted (after that row is flushed)."""
        if redemption is None:
            return
        await session.execute(
            update(PromoRedemption)
            .where(PromoRedemption.id == redemption.id)
            .values(subscription_id=subscription_id, discount_cents=redemption.discount_cents)
        )

    async def subscribe(self, caller: AccessClaims, data: SubscribeRequest) -> SubscribeResult:
        """``POST /v1/payments/subscribe``: the plan subscription with platform promo codes and 3-D Secure.

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
        code = normalize_code(data.promo_code)
        if code is not None:
            await self.precheck(code, user_id, PLATFORM)
        customer_id = await self._payments.customer_for(user_id)
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
            metadata = {"user_id": ids.encode(ids.Prefix.USER, user_id), "plan_id": plan.id}
            if code is not None:
                metadata["promo_code"] = code
            remote, redemption = await self.start_subscription(
                session,
                user_id=user_id,
                customer_id=customer_id,
                code=code,
                scope=PLATFORM,
                amount_cents=plan.amount_cents,
                key=key,
                create=lambda: self._stripe.create_subscription_awaiting_action(customer_id, plan.id, metadata, key),
            )
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
            await self.link_redemption(session, redemption, local_id)
            await settle(session, sub)
        client_secret = await self._stripe.subscription_client_secret(remote) if sub.status == "incomplete" else None
        log.info("subscription created", subscription=remote.id, status=sub.status, plan=plan.id, promo=code)
        return SubscribeResult(
            subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, local_id),
            status=sub.status,
            renewal_date=sub.current_period_end.date(),
            client_secret=client_secret,
        )
