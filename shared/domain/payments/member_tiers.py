"""Creator and club member tiers: paid subscriptions to a person or a club, with the platform's fee.

A tier is a Stripe product and plan. Subscribing creates a Stripe subscription recorded in
``subscriptions`` with ``member_tier_id`` (and no ``plan_id``), so the existing webhooks keep its
status in step. Every paid invoice of a tier books the charge to the creator's earnings and the
platform fee (``member_tiers.fee_bps``, from ``TRIBE_PLATFORM_FEE_BPS`` when the tier was made)
back to the platform; a refund of a tier invoice (``charge.refunded``) reverses both, in proportion.
A tier takes the promo codes its creator (or club) made, never a platform code (see ``promos``).
A club tier grants an active club membership while the subscription is entitled; when it lapses
(deleted, unpaid, expired) the membership it granted is removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec
import structlog
from sqlalchemy import ColumnElement, and_, delete, exists, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from shared import ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership, MemberRole, MembershipStatus
from shared.domain.payments.ledger import CREATOR_ACCOUNT, book_creator_charge, book_creator_refund
from shared.domain.payments.models import LedgerEntry, MemberTier, Subscription
from shared.domain.payments.owners import require_club_owner, require_self
from shared.domain.payments.promos import PromoScope, PromoService, normalize_code
from shared.domain.payments.schemas import CancelResult
from shared.domain.payments.services import CURRENCY, ENTITLED_STATUSES, PaymentService, _period_end, settle
from shared.domain.payments.stripe_client import StripeGateway
from shared.domain.users.models import User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound

log = structlog.get_logger("payments.member_tiers")

MAX_TIERS_PER_OWNER = 10
MIN_AMOUNT_CENTS = 100
MAX_AMOUNT_CENTS = 100_000


class TierCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A paid tier: name, price per interval and what subscribers get."""

    name: str
    amount_cents: int
    interval: Literal["month", "year"] = "month"
    description: str = ""


class TierView(msgspec.Struct, frozen=True):
    """A tier on offer."""

    id: str
    name: str
    description: str
    amount_cents: int
    currency: str
    interval: str
    owner_id: str
    club_id: str | None


class TierList(msgspec.Struct, frozen=True):
    """The tiers of a creator or a club, cheapest first."""

    items: list[TierView]


class TierSubscribeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Subscribe to a tier with a card, and optionally a promo code of that creator or club."""

    payment_method_id: str
    promo_code: str | None = None


class TierSubscribeResult(msgspec.Struct, frozen=True):
    """The tier subscription; ``client_secret`` when the card still needs authentication."""

    subscription_id: str
    tier_id: str
    status: str
    renewal_date: str
    client_secret: str | None


class TierEarnings(msgspec.Struct, frozen=True):
    """What the caller's tiers earned (from the ledger): gross, platform fees, refunds, net."""

    currency: str
    gross_cents: int
    fee_cents: int
    refund_cents: int
    net_cents: int
    platform_fee_bps: int
    active_subscribers: int


def _view(tier: MemberTier) -> TierView:
    return TierView(
        id=ids.encode(ids.Prefix.MEMBER_TIER, tier.id),
        name=tier.name,
        description=tier.description,
        amount_cents=tier.amount_cents,
        currency=tier.currency,
        interval=tier.interval,
        owner_id=ids.encode(ids.Prefix.USER, tier.owner_id),
        club_id=ids.encode(ids.Prefix.CLUB, tier.club_id) if tier.club_id else None,
    )


def subscribed_to_creator(
    viewer_id: uuid.UUID, creator_id: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID]
) -> ColumnElement[bool]:
    """SQL: the viewer holds an entitled subscription to one of ``creator_id``'s own (non-club) tiers."""
    return exists().where(
        Subscription.user_id == viewer_id,
        Subscription.status.in_(ENTITLED_STATUSES),
        Subscription.member_tier_id == MemberTier.id,
        MemberTier.owner_id == creator_id,
        MemberTier.club_id.is_(None),
    )


async def sync_tier_access(session: AsyncSession, sub: Subscription) -> None:
    """After a tier subscription changed: grant or remove the club membership it pays for."""
    if sub.member_tier_id is None:
        return
    tier = await session.get(MemberTier, sub.member_tier_id)
    if tier is None or tier.club_id is None:
        return
    if sub.status in ENTITLED_STATUSES:
        await _grant_membership(session, tier.club_id, sub.user_id)
    elif sub.status in ("canceled", "unpaid", "incomplete_expired"):
        await _revoke_membership(session, tier.club_id, sub.user_id, sub.id)


async def _grant_membership(session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await session.execute(text("SELECT 1 FROM clubs WHERE id = :id FOR UPDATE"), {"id": club_id})
    current = await session.scalar(
        select(ClubMembership)
        .where(ClubMembership.club_id == club_id, ClubMembership.user_id == user_id)
        .with_for_update()
    )
    now = utcnow()
    if current is None:
        await session.execute(
            insert(ClubMembership).values(
                id=ids.uuid7(),
                club_id=club_id,
                user_id=user_id,
                role=MemberRole.MEMBER.value,
                status=MembershipStatus.ACTIVE.value,
                joined_at=now,
            )
        )
        await _adjust_member_count(session, club_id, 1)
    elif current.status == MembershipStatus.PENDING.value:
        current.status = MembershipStatus.ACTIVE.value
        current.joined_at = now
        await _adjust_member_count(session, club_id, 1)
    # An active member stays as they are, and a banned one stays banned: paying does not lift a ban.


async def _revoke_membership(
    session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID, lapsed_id: uuid.UUID
) -> None:
    still_paid = await session.scalar(
        select(Subscription.id)
        .join(MemberTier, MemberTier.id == Subscription.member_tier_id)
        .where(
            Subscription.user_id == user_id,
            Subscription.id != lapsed_id,
            Subscription.status.in_(ENTITLED_STATUSES),
            MemberTier.club_id == club_id,
        )
        .limit(1)
    )
    if still_paid is not None:
        return
    await session.execute(text("SELECT 1 FROM clubs WHERE id = :id FOR UPDATE"), {"id": club_id})
    # Only a plain active membership goes; staff and owners keep theirs, and a ban stays recorded.
    removed = await session.scalar(
        delete(ClubMembership)
        .where(
            ClubMembership.club_id == club_id,
            ClubMembership.user_id == user_id,
            ClubMembership.role == MemberRole.MEMBER.value,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        )
        .returning(ClubMembership.id)
    )
    if removed is not None:
        await _adjust_member_count(session, club_id, -1)


async def _adjust_member_count(session: AsyncSession, club_id: uuid.UUID, delta: int) -> None:
    await session.execute(
        text("UPDATE clubs SET member_count = member_count + :d WHERE id = :id"), {"d": delta, "id": club_id}
    )


async def book_tier_invoice(
    session: AsyncSession, sub: Subscription, invoice_id: str, amount_cents: int, currency: str, now: datetime
) -> None:
    """A paid tier invoice: the creator earns it, less the platform fee."""
    assert sub.member_tier_id is not None
    tier = await session.get(MemberTier, sub.member_tier_id)
    if tier is None:
        return
    await book_creator_charge(
        session,
        now=now,
        source_ref=invoice_id,
        payer_id=sub.user_id,
        creator_id=tier.owner_id,
        amount_cents=amount_cents,
        fee_bps=tier.fee_bps,
        currency=currency,
        description=f"tier {tier.name!r} invoice {invoice_id}",
    )


async def book_tier_refund(
    session: AsyncSession,
    sub: Subscription,
    invoice: Mapping[str, Any],
    charge_id: str,
    refunded_total: int,
    currency: str,
    now: datetime,
) -> None:
    """A refunded tier invoice: the creator gives back the refund and the platform its share of the fee."""
    invoice_id = str(invoice["id"])
    amount_paid = int(invoice.get("amount_paid") or 0)
    if amount_paid > 0:
        # The refund may overtake the invoice's own webhook: book the charge first (a replay books nothing).
        await book_tier_invoice(session, sub, invoice_id, amount_paid, currency, now)
    await book_creator_refund(
        session,
        now=now,
        charge_ref=charge_id,
        invoice_ref=invoice_id,
        refunded_total=refunded_total,
        currency=currency,
        description=f"refund of tier invoice {invoice_id} (charge {charge_id})",
    )


class MemberTierService:
    """Define tiers, subscribe and cancel; Stripe billing, webhooks keep the status."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        stripe: StripeGateway,
        payments: PaymentService,
        promos: PromoService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._stripe = stripe
        self._payments = payments
        self._promos = promos
        self._clock = clock

    def _validate(self, data: TierCreate) -> tuple[str, str]:
        name, description = data.name.strip(), data.description.strip()
        errors: list[FieldError] = []
        if not 1 <= len(name) <= 80:
            errors.append(FieldError("name", "must be 1 to 80 characters"))
        if len(description) > 500:
            errors.append(FieldError("description", "at most 500 characters"))
        if not MIN_AMOUNT_CENTS <= data.amount_cents <= MAX_AMOUNT_CENTS:
            errors.append(FieldError("amount_cents", f"must be {MIN_AMOUNT_CENTS} to {MAX_AMOUNT_CENTS}"))
        if errors:
            raise InvalidInput(errors=errors)
        return name, description

    async def create_creator_tier(self, caller: AccessClaims, user_id: uuid.UUID, data: TierCreate) -> TierView:
        """A tier for your own followers."""
        require_self(caller, user_id, "tiers")
        return await self._create(caller.user_id, None, data)

    async def create_club_tier(self, caller: AccessClaims, club_id: uuid.UUID, data: TierCreate) -> TierView:
        """A paid membership tier of a club you own."""
        await require_club_owner(self._sessions, caller, club_id, "tiers")
        return await self._create(caller.user_id, club_id, data)

    async def _create(self, owner_id: uuid.UUID, club_id: uuid.UUID | None, data: TierCreate) -> TierView:
        name, description = self._validate(data)
        tier_id = ids.uuid7()
        async with self._sessions.begin() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"tiers:{owner_id}:{club_id}"}
            )
            owned = await session.scalar(
                select(MemberTier.id)
                .where(
                    MemberTier.owner_id == owner_id,
                    MemberTier.club_id.is_(None) if club_id is None else MemberTier.club_id == club_id,
                    MemberTier.active.is_(True),
                )
                .offset(MAX_TIERS_PER_OWNER - 1)
                .limit(1)
            )
            if owned is not None:
                raise Conflict(f"at most {MAX_TIERS_PER_OWNER} tiers", code="too_many_tiers")
            public_id = ids.encode(ids.Prefix.MEMBER_TIER, tier_id)
            product_id, plan_id = f"prod_{public_id}", public_id
            await self._stripe.ensure_product(product_id, name)
            await self._stripe.ensure_plan(plan_id, product_id, data.amount_cents, CURRENCY, data.interval)
            tier = MemberTier(
                id=tier_id,
                owner_id=owner_id,
                club_id=club_id,
                name=name,
                description=description,
                amount_cents=data.amount_cents,
                currency=CURRENCY,
                interval=data.interval,
                stripe_product_id=product_id,
                stripe_plan_id=plan_id,
                fee_bps=self._settings.platform_fee_bps,
            )
            session.add(tier)
        return _view(tier)

    async def list_creator_tiers(self, user_id: uuid.UUID) -> TierList:
        """A creator's active tiers."""
        async with self._sessions() as session:
            if await session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("no such user", code="user_not_found")
        return await self._list(and_(MemberTier.owner_id == user_id, MemberTier.club_id.is_(None)))

    async def list_club_tiers(self, club_id: uuid.UUID) -> TierList:
        """A club's active tiers."""
        async with self._sessions() as session:
            club = await session.get(Club, club_id)
        if club is None or club.deleted_at is not None:
            raise NotFound("no such club", code="club_not_found")
        return await self._list(MemberTier.club_id == club_id)

    async def _list(self, condition: ColumnElement[bool]) -> TierList:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(MemberTier)
                .where(condition, MemberTier.active.is_(True))
                .order_by(MemberTier.amount_cents, MemberTier.id)
            )
            return TierList(items=[_view(t) for t in rows])

    async def subscribe(
        self, caller: AccessClaims, tier_id: uuid.UUID, data: TierSubscribeRequest
    ) -> TierSubscribeResult:
        """Subscribe to a creator's or club's tier (not your own; one live subscription per tier).

        A ``promo_code`` must be one the tier's creator (or club) made; a platform code or another
        creator's is 422 ``invalid_promo_code`` and nothing is charged (see ``promos`` for why).
        """
        if not data.payment_method_id.strip():
            raise InvalidInput(errors=[FieldError("payment_method_id", "required")])
        async with self._sessions() as session:
            tier = await session.get(MemberTier, tier_id)
        if tier is None or not tier.active:
            raise NotFound("no such tier", code="tier_not_found")
        if tier.owner_id == caller.user_id:
            raise Conflict("you cannot subscribe to your own tier", code="own_tier")
        code = normalize_code(data.promo_code)
        scope = PromoScope(owner_id=tier.owner_id, club_id=tier.club_id)
        if code is not None:
            await self._promos.precheck(code, caller.user_id, scope)
        customer_id = await self._payments.customer_for(caller.user_id)
        async with self._sessions.begin() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                {"k": f"tier-subscribe:{caller.user_id}:{tier_id}"},
            )
            current = await session.scalar(
                select(Subscription.id).where(
                    Subscription.user_id == caller.user_id,
                    Subscription.member_tier_id == tier_id,
                    Subscription.status.in_((*ENTITLED_STATUSES, "incomplete", "past_due")),
                )
            )
            if current is not None:
                raise Conflict("you already subscribe to this tier", code="already_subscribed")
            local_id = ids.uuid7()
            key = f"tier-subscribe-{local_id}"
            await self._stripe.set_default_payment_method(customer_id, data.payment_method_id, key)
            metadata = {
                "user_id": ids.encode(ids.Prefix.USER, caller.user_id),
                "member_tier_id": ids.encode(ids.Prefix.MEMBER_TIER, tier_id),
            }
            if code is not None:
                metadata["promo_code"] = code
            remote, redemption = await self._promos.start_subscription(
                session,
                user_id=caller.user_id,
                customer_id=customer_id,
                code=code,
                scope=scope,
                amount_cents=tier.amount_cents,
                key=key,
                create=lambda: self._stripe.create_subscription_awaiting_action(
                    customer_id, tier.stripe_plan_id, metadata, key
                ),
            )
            sub = Subscription(
                id=local_id,
                user_id=caller.user_id,
                member_tier_id=tier_id,
                stripe_subscription_id=remote.id,
                stripe_idempotency_key=key,
                status=str(remote.status),
                current_period_end=_period_end(remote.to_dict()),
                cancel_at_period_end=bool(remote["cancel_at_period_end"]),
                promo_code=code,
            )
            session.add(sub)
            await session.flush()
            await self._promos.link_redemption(session, redemption, local_id)
            # settle() also grants the club membership of a club tier.
            await settle(session, sub)
        client_secret = await self._stripe.subscription_client_secret(remote) if sub.status == "incomplete" else None
        log.info("tier subscription created", subscription=remote.id, status=sub.status, tier=str(tier_id), promo=code)
        return TierSubscribeResult(
            subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, local_id),
            tier_id=ids.encode(ids.Prefix.MEMBER_TIER, tier_id),
            status=sub.status,
            renewal_date=sub.current_period_end.date().isoformat(),
            client_secret=client_secret,
        )

    async def earnings(self, caller: AccessClaims) -> TierEarnings:
        """The caller's earnings from their creator and club tiers."""
        async with self._sessions() as session:
            return await tier_earnings(session, caller.user_id, self._settings.platform_fee_bps)

    async def cancel(self, caller: AccessClaims, tier_id: uuid.UUID) -> CancelResult:
        """Cancel your subscription to a tier at the end of the paid period (access lasts until then)."""
        async with self._sessions.begin() as session:
            sub = await session.scalar(
                select(Subscription)
                .where(
                    Subscription.user_id == caller.user_id,
                    Subscription.member_tier_id == tier_id,
                    Subscription.status.in_((*ENTITLED_STATUSES, "past_due", "incomplete", "unpaid")),
                )
                .order_by(Subscription.id.desc())
                .limit(1)
                .with_for_update()
            )
            if sub is None:
                raise NotFound("you do not subscribe to this tier", code="not_found")
            if not sub.cancel_at_period_end:
                remote = await self._stripe.set_cancel_at_period_end(
                    sub.stripe_subscription_id, True, f"tier-cancel-{sub.id}"
                )
                sub.cancel_at_period_end = True
                sub.cancel_at = sub.current_period_end
                sub.status = str(remote.status)
                await settle(session, sub)
            assert sub.cancel_at is not None
            return CancelResult(
                subscription_id=ids.encode(ids.Prefix.SUBSCRIPTION, sub.id), status=sub.status, cancel_at=sub.cancel_at
            )

    async def cancel_all(self, caller: AccessClaims) -> int:
        """Cancel every tier subscription of the caller at period end (account deletion); how many."""
        async with self._sessions() as session:
            tier_ids = set(
                await session.scalars(
                    select(Subscription.member_tier_id).where(
                        Subscription.user_id == caller.user_id,
                        Subscription.member_tier_id.is_not(None),
                        Subscription.cancel_at_period_end.is_(False),
                        Subscription.status.in_((*ENTITLED_STATUSES, "past_due", "incomplete", "unpaid")),
                    )
                )
            )
        for tier_id in tier_ids:
            if tier_id is not None:
                await self.cancel(caller, tier_id)
        return len(tier_ids)


async def tier_earnings(session: AsyncSession, creator_id: uuid.UUID, fee_bps: int) -> TierEarnings:
    """Sum the creator's ``creator_earnings`` legs by kind, and count their entitled subscribers."""
    rows = (
        await session.execute(
            select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .where(LedgerEntry.account == CREATOR_ACCOUNT, LedgerEntry.user_id == creator_id)
            .group_by(LedgerEntry.kind)
        )
    ).all()
    by_kind = {str(kind): int(total) for kind, total in rows}
    subscribers = await session.scalar(
        select(func.count(func.distinct(Subscription.user_id)))
        .join(MemberTier, MemberTier.id == Subscription.member_tier_id)
        .where(MemberTier.owner_id == creator_id, Subscription.status.in_(ENTITLED_STATUSES))
    )
    gross, fees, refunds = by_kind.get("charge", 0), -by_kind.get("fee", 0), -by_kind.get("refund", 0)
    return TierEarnings(
        currency=CURRENCY,
        gross_cents=gross,
        fee_cents=fees,
        refund_cents=refunds,
        net_cents=gross - fees - refunds,
        platform_fee_bps=fee_bps,
        active_subscribers=int(subscribers or 0),
    )
