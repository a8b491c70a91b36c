"""Paid tickets: seat holds while a card is charged, refunds, waitlist offers, pay at venue, earnings and payouts.

Order of locks: the event row first (as in the RSVP engine), then the payment row. A card charge never
runs under the event lock: the seats are held (``held``, counted in ``seats_taken``, so the capacity
CHECK covers them) and committed first, the PaymentIntent is confirmed, then a second transaction
confirms the ticket or gives the seats back. ``sweep`` releases holds and offers that ran out.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.tokens import AccessClaims
from shared.domain.events.models import CalendarFeed, Event, EventStatus, PaymentProvider, Rsvp, RsvpStatus
from shared.domain.events.schemas import CalendarSync, RsvpRequest, RsvpResult
from shared.domain.events.services import EventService
from shared.domain.notifications.services import notify
from shared.domain.payments.models import LedgerEntry
from shared.domain.payments.stripe_client import StripeGateway, StripeNotFound
from shared.domain.payments.ticket_models import (
    LIVE_PAYMENT_STATUSES,
    Payout,
    PayoutAccount,
    TicketPayment,
    TicketRefund,
)
from shared.domain.payments.ticket_schemas import (
    Earnings,
    EventEarnings,
    PayoutAccountIn,
    PayoutAccountOut,
    PayoutCursor,
    PayoutOut,
    PayoutRequest,
    TicketInfo,
    TicketRsvpResult,
)
from shared.domain.users.models import Role
from shared.errors import (
    Conflict,
    DomainError,
    FieldError,
    InvalidInput,
    NotFound,
    PaymentFailed,
    PermissionDenied,
)
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

log = structlog.get_logger("tickets")

CUSTOMER_ACCOUNT = "customer"
ORGANIZER_ACCOUNT = "organizer"
REVENUE_ACCOUNT = "platform_revenue"
PAYOUT_CURRENCY = "usd"
SEAT_STATUSES = (RsvpStatus.HELD.value, RsvpStatus.OFFERED.value)
# A refund pending this long is one whose process died between reserving it and hearing from Stripe.
STUCK_REFUND_AFTER = timedelta(minutes=10)
BANK_REFERENCE = re.compile(r"[A-Z0-9]{6,34}")
CONNECT_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,59}")


class PayoutProvider(Protocol):
    """Moves an organizer's money out to the destination they stored; returns the status and a reference."""

    name: str

    async def check_destination(self, destination: str) -> str:
        """The destination in the provider's canonical form; 422 ``invalid_payout_destination`` when unusable."""
        ...

    async def send(
        self, payout_id: uuid.UUID, amount_cents: int, currency: str, destination: str
    ) -> tuple[str, str | None]:
        """Pay ``amount_cents`` out."""
        ...


def _bad_destination(reason: str) -> InvalidInput:
    return InvalidInput(
        f"this payout destination cannot be used: {reason}",
        code="invalid_payout_destination",
        errors=[FieldError("destination", reason)],
    )


class ManualPayouts:
    """Payouts done by hand: the operator transfers to the stored bank account; recording is the whole operation."""

    name = "manual"

    async def check_destination(self, destination: str) -> str:
        """An IBAN or bank account reference: letters, digits, spaces and dashes (kept without spaces, upper case)."""
        canonical = re.sub(r"[\s-]+", "", destination).upper()
        if not BANK_REFERENCE.fullmatch(canonical):
            raise _bad_destination("a bank account is 6 to 34 letters and digits (spaces and dashes allowed)")
        return canonical

    async def send(
        self, payout_id: uuid.UUID, amount_cents: int, currency: str, destination: str
    ) -> tuple[str, str | None]:
        """Record the payout as paid (the operator's transfer references the payout id)."""
        return "paid", None


class StripeConnectPayouts:
    """Production path: a Stripe Connect transfer to the organizer's connected account.

    localstripe has no ``/v1/accounts`` or ``/v1/transfers``, so this path is not exercised locally or in tests.
    """

    name = "stripe_connect"

    def __init__(self, stripe: StripeGateway) -> None:
        self._stripe = stripe

    async def check_destination(self, destination: str) -> str:
        """An ``acct_...`` id that Stripe knows and that can be paid out to."""
        if not CONNECT_ACCOUNT.fullmatch(destination):
            raise _bad_destination("a Stripe Connect account id looks like acct_...")
        try:
            ready = await self._stripe.connected_account_ready(destination)
        except StripeNotFound:
            raise _bad_destination("Stripe does not know this account") from None
        if not ready:
            raise _bad_destination("this account has not finished Stripe onboarding")
        return destination

    async def send(
        self, payout_id: uuid.UUID, amount_cents: int, currency: str, destination: str
    ) -> tuple[str, str | None]:
        """Transfer to ``destination`` (an ``acct_...`` id)."""
        transfer = await self._stripe.transfer_to_account(amount_cents, currency, destination, f"payout-{payout_id}")
        return "paid", str(transfer.id)


def payout_provider(settings: Settings, stripe: StripeGateway) -> PayoutProvider:
    """The provider ``TRIBE_PAYOUT_PROVIDER`` names."""
    if settings.payout_provider == "stripe_connect":
        return StripeConnectPayouts(stripe)
    if settings.payout_provider == "manual":
        return ManualPayouts()
    raise ValueError(f"unknown payout provider {settings.payout_provider!r}")


def _info(payment: TicketPayment) -> TicketInfo:
    return TicketInfo(
        payment_id=ids.encode(ids.Prefix.TICKET_PAYMENT, payment.id),
        status=payment.status,
        provider=payment.provider,
        amount_cents=payment.amount_cents,
        refunded_cents=payment.refunded_cents,
        currency=payment.currency,
        seats=payment.seats,
    )


def _wrap(result: RsvpResult, ticket: TicketInfo | None = None, expires: datetime | None = None) -> TicketRsvpResult:
    return TicketRsvpResult(
        rsvp_id=result.rsvp_id,
        status=result.status,
        calendar_sync=result.calendar_sync,
        guest_count=result.guest_count,
        waitlist_position=result.waitlist_position,
        hold_expires_at=expires,
        ticket=ticket,
    )


class TicketService:
    """Buying, refunding and paying out tickets; the RSVP engine keeps the seats."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        events: EventService,
        stripe: StripeGateway,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._events = events
        self._stripe = stripe
        self._clock = clock
        self._payouts = payout_provider(settings, stripe)

    # ---- RSVP ---------------------------------------------------------------------------

    async def rsvp(
        self, actor: AccessClaims, event_id: uuid.UUID, data: RsvpRequest, idempotency_key: str | None = None
    ) -> TicketRsvpResult:
        """An RSVP; on card-paid events ``going`` charges the card, cancelling refunds within the policy."""
        async with self._sessions() as session:
            event = await session.get(Event, event_id)
        if event is None or event.ticket_type != "paid":
            return _wrap(await self._events.rsvp(actor, event_id, data))
        if event.payment_provider == PaymentProvider.PAY_AT_VENUE:
            return await self._rsvp_at_venue(actor, event_id, data)
        if data.status == "going":
            if data.payment_method_id is None:
                raise InvalidInput(
                    "paid events need a payment method",
                    code="payment_method_required",
                    errors=[FieldError("payment_method_id", "required for paid events")],
                )
            mine = await self._rsvp_status(actor.user_id, event_id)
            if event.requires_approval and event.organizer_id != actor.user_id and mine != RsvpStatus.OFFERED:
                # Approval first (no charge); an approved RSVP is offered its seats and pays with this same call.
                return _wrap(await self._events.rsvp(actor, event_id, data))
            return await self._buy(actor, event_id, data, data.payment_method_id, idempotency_key)
        paid = await self._live_payment_of(actor.user_id, event_id)
        result = await self._events.rsvp(actor, event_id, data)
        if paid is None or paid.status != "succeeded":
            return _wrap(result)
        # Cancelling before the refund deadline gets the money back; later, the ticket is forfeited.
        if self._refundable(event):
            return _wrap(result, await self._refund(paid.id, "cancelled by the attendee"))
        return _wrap(result, _info(paid))

    async def _rsvp_status(self, user_id: uuid.UUID, event_id: uuid.UUID) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(select(Rsvp.status).where(Rsvp.event_id == event_id, Rsvp.user_id == user_id))

    def _refundable(self, event: Event) -> bool:
        return self._clock() <= event.start_time - timedelta(hours=event.refund_until_hours)

    async def _live_payment_of(self, user_id: uuid.UUID, event_id: uuid.UUID) -> TicketPayment | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(TicketPayment).where(
                    TicketPayment.user_id == user_id,
                    TicketPayment.event_id == event_id,
                    TicketPayment.status.in_(LIVE_PAYMENT_STATUSES),
                )
            )

    async def _buy(
        self, actor: AccessClaims, event_id: uuid.UUID, data: RsvpRequest, pm: str, key: str | None
    ) -> TicketRsvpResult:
        now = self._clock()
        async with self._sessions.begin() as session:
            event = await self._events.lock_event(session, event_id)
            viewer = await self._events.rsvp_viewer(session, event, actor)
            if event.status != EventStatus.PUBLISHED or event.start_time <= now:
                raise Conflict("this event is not taking RSVPs", code="event_closed")
            rsvp = viewer.rsvp
            guests = data.guest_count
            if rsvp is not None and rsvp.status == RsvpStatus.REJECTED:
                raise PermissionDenied("the organizer declined your RSVP", code="rsvp_rejected")
            if rsvp is not None and rsvp.status == RsvpStatus.CONFIRMED:
                raise Conflict("you already have a ticket to this event", code="ticket_already_bought")
            if rsvp is not None and rsvp.status == RsvpStatus.HELD:
                raise Conflict("a payment for this RSVP is in progress", code="payment_in_progress")
            if rsvp is not None and rsvp.status in (RsvpStatus.WAITLISTED, RsvpStatus.PENDING_APPROVAL):
                return await self._answer(session, rsvp)
            if rsvp is not None and rsvp.status == RsvpStatus.OFFERED:
                busy = await session.scalar(
                    select(TicketPayment.id).where(TicketPayment.rsvp_id == rsvp.id, TicketPayment.status == "pending")
                )
                if busy is not None:
                    raise Conflict("a payment for this RSVP is in progress", code="payment_in_progress")
                delta = guests - rsvp.guest_count
                if delta > 0 and event.capacity is not None and event.seats_taken + delta > event.capacity:
                    raise Conflict("not enough seats left for more guests", code="event_full")
                event.seats_taken += delta
                rsvp.guest_count = guests
                # Offered seats (guests added to the offer too) cost what they were offered at.
                price = event.price_cents if rsvp.seat_price_cents is None else rsvp.seat_price_cents
            else:
                previous = rsvp.status if rsvp is not None else None
                if rsvp is None:
                    rsvp = Rsvp(id=ids.uuid7(), event_id=event.id, user_id=actor.user_id, guest_count=guests)
                rsvp.guest_count = guests
                expires = now + timedelta(seconds=self._settings.ticket_hold_seconds)
                if not await self._events.hold_seats(session, event, rsvp, previous, expires):
                    return await self._answer(session, rsvp)
                price = event.price_cents
            amount = price * rsvp.seats
            payment = TicketPayment(
                id=ids.uuid7(),
                event_id=event.id,
                rsvp_id=rsvp.id,
                user_id=actor.user_id,
                organizer_id=event.organizer_id,
                provider=PaymentProvider.STRIPE.value,
                status="pending",
                seats=rsvp.seats,
                amount_cents=amount,
                currency=event.currency.lower(),
                fee_cents=amount * self._settings.platform_fee_bps // 10_000,
                refunded_cents=0,
            )
            # The client's Idempotency-Key (per user) reaches Stripe too, so a retry cannot charge twice.
            payment.idempotency_key = f"ticket-{actor.user_id}-{key}" if key else f"ticket-{payment.id}"
            session.add(payment)
            await session.flush()
            payment_id, rsvp_id, currency, stripe_key = payment.id, rsvp.id, payment.currency, payment.idempotency_key
        metadata = {
            "ticket_payment_id": str(payment_id),
            "rsvp_id": ids.encode(ids.Prefix.RSVP, rsvp_id),
            "event_id": ids.encode(ids.Prefix.EVENT, event_id),
        }
        try:
            intent = await self._stripe.charge_payment_method(amount, currency, pm, metadata, stripe_key)
        except (PaymentFailed, InvalidInput) as exc:
            await self._settle_failure(payment_id, exc.detail)
            raise
        if str(intent.status) != "succeeded":
            await self._settle_failure(payment_id, f"payment {intent.status}")
            raise PaymentFailed(f"the payment did not go through ({intent.status})")
        confirmed = await self._settle_success(payment_id, str(intent.id))
        if not confirmed:
            raise Conflict("the seat hold ran out before the payment finished; you were refunded", code="hold_expired")
        async with self._sessions() as session:
            rsvp = await session.get(Rsvp, rsvp_id)
            assert rsvp is not None
            return await self._answer(session, rsvp)

    async def _answer(self, session: AsyncSession, rsvp: Rsvp) -> TicketRsvpResult:
        position = None
        if rsvp.status == RsvpStatus.WAITLISTED:
            position = int(
                await session.scalar(
                    select(func.count()).where(
                        Rsvp.event_id == rsvp.event_id,
                        Rsvp.status == RsvpStatus.WAITLISTED.value,
                        Rsvp.queue_seq <= rsvp.queue_seq,
                    )
                )
                or 0
            )
        payment = await session.scalar(
            select(TicketPayment)
            .where(TicketPayment.rsvp_id == rsvp.id)
            .order_by(TicketPayment.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        synced = await session.scalar(select(func.count()).where(CalendarFeed.user_id == rsvp.user_id))
        state = "synced" if synced else "not_connected"
        return TicketRsvpResult(
            rsvp_id=ids.encode(ids.Prefix.RSVP, rsvp.id),
            status=rsvp.status,
            calendar_sync=CalendarSync(google=state, apple=state),  # type: ignore[arg-type]
            guest_count=rsvp.guest_count,
            waitlist_position=position,
            hold_expires_at=rsvp.hold_expires_at,
            ticket=_info(payment) if payment is not None else None,
        )

    async def _locked(self, session: AsyncSession, payment_id: uuid.UUID) -> tuple[Event, TicketPayment, Rsvp]:
        """Event, then payment and RSVP, locked in that order."""
        event_id = await session.scalar(select(TicketPayment.event_id).where(TicketPayment.id == payment_id))
        if event_id is None:
            raise NotFound("no such payment", code="payment_not_found")
        event = await self._events.lock_event(session, event_id)
        payment = await self._lock_payment(session, payment_id)
        rsvp = await session.scalar(
            select(Rsvp).where(Rsvp.id == payment.rsvp_id).execution_options(populate_existing=True)
        )
        assert rsvp is not None
        return event, payment, rsvp

    async def _settle_success(self, payment_id: uuid.UUID, intent_id: str, remote_refunded: int = 0) -> bool:
        """The charge succeeded: confirm the held seats (``True``), or refund when the hold is gone (``False``).

        ``remote_refunded`` is what Stripe says was already refunded of the charge (a webhook re-fetch):
        a charge refunded in full before its success was heard of frees the seats instead of confirming them.
        """
        async with self._sessions.begin() as session:
            event, payment, rsvp = await self._locked(session, payment_id)
            confirmed = payment.status == "succeeded"
            if payment.status not in ("succeeded", "refunded"):
                payment.stripe_payment_intent_id = intent_id
                holding = rsvp.status in SEAT_STATUSES and payment.status == "pending"
                payment.status = "succeeded"
                await session.flush()
                await self._book(session, payment)
                if holding and remote_refunded < payment.amount_cents:
                    reason = "offer_paid" if rsvp.status == RsvpStatus.OFFERED else "paid"
                    await self._events.confirm_held(session, event, rsvp, reason)
                    confirmed = True
                elif holding:
                    await self._events.release_seats(session, event, rsvp, "refunded", rsvp.user_id)
            if payment.status == "succeeded" and remote_refunded > payment.refunded_cents:
                await self._record_remote_refund(session, event, payment, rsvp, remote_refunded)
            owed = not confirmed and payment.status == "succeeded"
        if owed:
            # The hold ran out (swept) while the card was charged: the money goes back.
            await self._refund(payment_id, "hold_expired")
        return confirmed

    async def _settle_failure(self, payment_id: uuid.UUID, reason: str) -> None:
        """The charge failed: release the held seats (the waitlist moves up)."""
        async with self._sessions.begin() as session:
            event, payment, rsvp = await self._locked(session, payment_id)
            if payment.status != "pending":
                return
            payment.status = "failed"
            payment.failure_reason = reason[:300]
            # Frees the key, so the client may retry with the same Idempotency-Key and another card.
            payment.idempotency_key = f"{payment.idempotency_key[:200]}:failed:{payment.id}"
            await session.flush()
            if rsvp.status == RsvpStatus.HELD:
                await self._events.release_seats(session, event, rsvp, "payment_failed", rsvp.user_id)

    # ---- refunds --------------------------------------------------------------------------
    # A refund is reserved first: ``refunded_cents`` goes up under the payment's row lock (its CHECK keeps the
    # refunds of a payment within what was charged, whatever the concurrency) next to a ``pending`` refund row
    # with its own Idempotency-Key. Stripe is asked with no lock held; the refund is then booked, or given back.

    async def _refund(
        self,
        payment_id: uuid.UUID,
        reason: str,
        *,
        amount: int | None = None,
        actor_id: uuid.UUID | None = None,
        strict: bool = False,
    ) -> TicketInfo:
        """Refund ``amount`` (default: all that is left) of a succeeded card payment.

        Without ``strict`` a payment with nothing left to refund is a no-op (system paths that may repeat);
        with it (a person asking) that is an error and nothing changes.
        """
        async with self._sessions.begin() as session:
            payment = await self._lock_payment(session, payment_id)
            left = payment.amount_cents - payment.refunded_cents
            if payment.status != "succeeded" or payment.stripe_payment_intent_id is None:
                if strict:
                    raise Conflict(f"a {payment.status} payment cannot be refunded", code="not_refundable")
                return _info(payment)
            wanted = left if amount is None else amount
            if wanted > left or wanted <= 0:
                if not strict:
                    return _info(payment)
                raise InvalidInput(
                    f"only {left} of the {payment.amount_cents} cents charged can still be refunded",
                    code="refund_exceeds_charge",
                    errors=[FieldError("amount_cents", f"must be at most {left}")],
                )
            payment.refunded_cents += wanted
            refund = TicketRefund(
                id=ids.uuid7(),
                payment_id=payment.id,
                amount_cents=wanted,
                fee_cents=0,
                status="pending",
                reason=reason[:120],
                requested_by=actor_id,
            )
            refund.idempotency_key = f"ticket-refund-{refund.id}"
            session.add(refund)
            await session.flush()
            refund_id, intent_id = refund.id, payment.stripe_payment_intent_id
        return await self._send_refund(refund_id, intent_id, wanted)

    async def _send_refund(self, refund_id: uuid.UUID, intent_id: str, amount: int) -> TicketInfo:
        """Ask Stripe for a reserved refund, then book it; a refusal gives the reservation back and re-raises."""
        async with self._sessions() as session:
            found = await session.get(TicketRefund, refund_id)
            assert found is not None
            key, payment_id = found.idempotency_key, found.payment_id
            if found.status != "pending":
                payment = await session.get(TicketPayment, payment_id)
                assert payment is not None
                return _info(payment)
        try:
            remote = await self._stripe.refund_payment_intent(intent_id, key, amount)
        except DomainError:
            async with self._sessions.begin() as session:
                refund = await self._lock_refund(session, refund_id)
                payment = await self._lock_payment(session, refund.payment_id)
                if refund.status == "pending":
                    refund.status = "failed"
                    payment.refunded_cents -= refund.amount_cents
            raise
        async with self._sessions.begin() as session:
            event, payment, rsvp = await self._locked(session, payment_id)
            refund = await self._lock_refund(session, refund_id)
            if refund.status == "pending":
                refund.status = "succeeded"
                refund.stripe_refund_id = str(remote.id)
                await session.flush()
                await self._refund_succeeded(session, event, payment, rsvp, refund)
            return _info(payment)

    async def _lock_payment(self, session: AsyncSession, payment_id: uuid.UUID) -> TicketPayment:
        payment = await session.scalar(
            select(TicketPayment)
            .where(TicketPayment.id == payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if payment is None:
            raise NotFound("no such payment", code="payment_not_found")
        return payment

    async def _lock_refund(self, session: AsyncSession, refund_id: uuid.UUID) -> TicketRefund:
        refund = await session.scalar(
            select(TicketRefund)
            .where(TicketRefund.id == refund_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert refund is not None
        return refund

    async def _record_remote_refund(
        self, session: AsyncSession, event: Event, payment: TicketPayment, rsvp: Rsvp, remote_total: int
    ) -> None:
        """Money Stripe refunded that Tribe did not ask for (the dashboard) still reaches the books."""
        delta = remote_total - payment.refunded_cents
        payment.refunded_cents = remote_total
        refund = TicketRefund(
            id=ids.uuid7(),
            payment_id=payment.id,
            amount_cents=delta,
            fee_cents=0,
            status="succeeded",
            reason="refunded in Stripe",
            # Derived from the running total, so a redelivered or re-fetched refund is recorded once.
            idempotency_key=f"stripe-refund-{payment.stripe_payment_intent_id}-{remote_total}",
        )
        session.add(refund)
        await session.flush()
        await self._refund_succeeded(session, event, payment, rsvp, refund)

    async def _refund_succeeded(
        self, session: AsyncSession, event: Event, payment: TicketPayment, rsvp: Rsvp, refund: TicketRefund
    ) -> None:
        """Book a succeeded refund, give back its share of the fee; the last one cancels the ticket."""
        settled = int(
            await session.scalar(
                select(func.coalesce(func.sum(TicketRefund.amount_cents), 0)).where(
                    TicketRefund.payment_id == payment.id, TicketRefund.status == "succeeded"
                )
            )
            or 0
        )
        # The fee given back is the fee's share of everything refunded so far, rounded down, less what earlier
        # refunds gave: partial refunds never return more than their share, and the last one returns the rest.
        fee_back = payment.fee_cents * settled // payment.amount_cents - payment.fee_refunded_cents
        refund.fee_cents = fee_back
        payment.fee_refunded_cents += fee_back
        await session.flush()
        await self._book(
            session,
            payment,
            refund=True,
            amount=refund.amount_cents,
            fee=fee_back,
            # 78 characters: ledger source refs are at most 80.
            ref=f"ticket:{payment.id}:r:{refund.id.hex}",
        )
        full = settled == payment.amount_cents
        if full:
            payment.status = "refunded"
            await session.flush()
            other = await session.scalar(
                select(TicketPayment.id).where(
                    TicketPayment.rsvp_id == rsvp.id,
                    TicketPayment.id != payment.id,
                    TicketPayment.status.in_(LIVE_PAYMENT_STATUSES),
                )
            )
            if rsvp.status == RsvpStatus.CONFIRMED and other is None:
                await self._events.release_seats(session, event, rsvp, "refunded", refund.requested_by or rsvp.user_id)
        await notify(
            session,
            payment.user_id,
            "ticket_refunded",
            {
                "event_id": ids.encode(ids.Prefix.EVENT, payment.event_id),
                "event_title": event.title,
                "amount": f"{refund.amount_cents / 100:.2f} {payment.currency.upper()} refunded ({refund.reason})",
                "payment_id": ids.encode(ids.Prefix.TICKET_PAYMENT, payment.id),
            },
            dedupe_key=f"ticket_refunded:{refund.id}",
        )

    async def refund_by_organizer(
        self, actor: AccessClaims, payment_id: uuid.UUID, amount: int | None = None
    ) -> TicketInfo:
        """The event's organizer (or an admin) refunds ``amount`` of a ticket (default: the rest).

        A refund that completes the charge cancels the ticket and frees its seats; a partial one keeps it.
        """
        async with self._sessions() as session:
            found = await session.scalar(select(TicketPayment).where(TicketPayment.id == payment_id))
        if found is None or (found.organizer_id != actor.user_id and Role.ADMIN.value not in actor.roles):
            raise NotFound("no such payment", code="payment_not_found")
        return await self._refund(
            payment_id, "refunded by the organizer", amount=amount, actor_id=actor.user_id, strict=True
        )

    async def refund_event(self, event_id: uuid.UUID) -> int:
        """Refund every paid ticket of a cancelled event (a worker job; running it again refunds nothing twice)."""
        async with self._sessions() as session:
            status = await session.scalar(select(Event.status).where(Event.id == event_id))
            if status != EventStatus.CANCELLED:
                return 0
            payment_ids = list(
                await session.scalars(
                    select(TicketPayment.id).where(
                        TicketPayment.event_id == event_id, TicketPayment.status == "succeeded"
                    )
                )
            )
        for payment_id in payment_ids:
            await self._refund(payment_id, "event cancelled")
        return len(payment_ids)

    # ---- sweeping and webhooks ----------------------------------------------------------------

    async def sweep(self, now: datetime) -> int:
        """Release holds and offers that ran out (an offer passes to the next in line) and refund cancelled events."""
        async with self._sessions() as session:
            due = (
                await session.execute(
                    select(Rsvp.id, Rsvp.event_id)
                    .where(Rsvp.status.in_(SEAT_STATUSES), Rsvp.hold_expires_at <= now)
                    .order_by(Rsvp.hold_expires_at)
                    .limit(500)
                )
            ).all()
            cancelled = list(
                await session.scalars(
                    select(TicketPayment.event_id)
                    .join(Event, Event.id == TicketPayment.event_id)
                    .where(TicketPayment.status == "succeeded", Event.status == EventStatus.CANCELLED.value)
                    .distinct()
                )
            )
            # Refunds left pending by a process that died after reserving them: asked again with the same key.
            stuck = (
                await session.execute(
                    select(TicketRefund.id, TicketPayment.stripe_payment_intent_id, TicketRefund.amount_cents)
                    .join(TicketPayment, TicketPayment.id == TicketRefund.payment_id)
                    .where(TicketRefund.status == "pending", TicketRefund.created_at <= now - STUCK_REFUND_AFTER)
                    .limit(100)
                )
            ).all()
        released = 0
        for rsvp_id, event_id in due:
            async with self._sessions.begin() as session:
                event = await self._events.lock_event(session, event_id)
                rsvp = await session.scalar(
                    select(Rsvp).where(Rsvp.id == rsvp_id).execution_options(populate_existing=True)
                )
                if rsvp is None or rsvp.status not in SEAT_STATUSES or rsvp.hold_expires_at is None:
                    continue
                if rsvp.hold_expires_at > now:
                    continue
                reason = "hold_expired" if rsvp.status == RsvpStatus.HELD else "offer_expired"
                # A charge still pending loses its claim; if it succeeds later, the webhook refunds it.
                pending = await session.scalar(
                    select(TicketPayment)
                    .where(TicketPayment.rsvp_id == rsvp.id, TicketPayment.status == "pending")
                    .with_for_update()
                )
                if pending is not None:
                    pending.status = "failed"
                    pending.failure_reason = "the seat hold expired"
                    pending.idempotency_key = f"{pending.idempotency_key[:200]}:failed:{pending.id}"
                await self._events.release_seats(session, event, rsvp, reason, rsvp.user_id)
                released += 1
        for event_id in cancelled:
            await self.refund_event(event_id)
        for refund_id, intent_id, amount in stuck:
            try:
                await self._send_refund(refund_id, str(intent_id), amount)
            except DomainError as exc:
                log.warning("stuck refund failed again", refund_id=str(refund_id), error=exc.detail)
        return released

    async def reconcile(self, payload: bytes) -> None:
        """Apply a verified Stripe webhook to ticket payments (the payments service has already checked it).

        Webhooks come late, twice and out of order, so the payload only names the PaymentIntent; what is
        applied is the PaymentIntent (and its charge's refunds) as Stripe has it now.
        """
        body: dict[str, Any] = json.loads(payload)
        etype = str(body.get("type"))
        obj: dict[str, Any] = (body.get("data") or {}).get("object") or {}
        if etype in ("payment_intent.succeeded", "payment_intent.payment_failed"):
            # Skip the Stripe round trip for intents that are not tickets' (boosts, invoices).
            if await self._payment_for_intent(obj) is None:
                return
            await self.sync_intent(str(obj["id"]))
        elif etype == "charge.refunded" and obj.get("payment_intent"):
            await self.sync_intent(str(obj["payment_intent"]))

    async def sync_intent(self, intent_id: str) -> None:
        """Bring the ticket paid by ``intent_id`` in line with the PaymentIntent as Stripe has it now."""
        try:
            intent = await self._stripe.retrieve_payment_intent(intent_id)
        except StripeNotFound:
            return
        payment_id = await self._payment_for_intent(intent)
        if payment_id is None:
            return
        status = str(intent.get("status"))
        if status == "succeeded":
            await self._settle_success(payment_id, intent_id, _amount_refunded(intent))
        elif status in ("requires_payment_method", "canceled"):
            # Only a payment still pending fails; a stale failure after a success changes nothing.
            error = intent.get("last_payment_error") or {}
            await self._settle_failure(payment_id, str(error.get("message") or f"payment {status}"))

    async def _payment_for_intent(self, intent: dict[str, Any]) -> uuid.UUID | None:
        raw = (intent.get("metadata") or {}).get("ticket_payment_id")
        async with self._sessions() as session:
            if raw:
                try:
                    return await session.scalar(select(TicketPayment.id).where(TicketPayment.id == uuid.UUID(raw)))
                except ValueError:
                    return None
            return await session.scalar(
                select(TicketPayment.id).where(TicketPayment.stripe_payment_intent_id == str(intent.get("id")))
            )

    # ---- ledger ----------------------------------------------------------------------------

    async def _legs(
        self, session: AsyncSession, payment: TicketPayment, kind: str, ref: str, legs: list[tuple[str, Any, int]]
    ) -> None:
        if not any(amount for _, _, amount in legs):
            return
        transaction_id = ids.uuid7()
        await session.execute(
            insert(LedgerEntry)
            .values(
                [
                    {
                        "id": ids.uuid7(),
                        "transaction_id": transaction_id,
                        "user_id": user_id,
                        "account": account,
                        "kind": kind,
                        "amount_cents": amount,
                        "currency": payment.currency,
                        "source_ref": ref,
                        "description": f"ticket {ids.encode(ids.Prefix.TICKET_PAYMENT, payment.id)} ({kind})",
                        "created_at": self._clock(),
                    }
                    for account, user_id, amount in legs
                    if amount != 0
                ]
            )
            .on_conflict_do_nothing(index_elements=["source_ref", "kind", "account"])
        )

    async def _book(
        self,
        session: AsyncSession,
        payment: TicketPayment,
        *,
        refund: bool = False,
        amount: int | None = None,
        fee: int | None = None,
        ref: str | None = None,
    ) -> None:
        """A charge: the attendee pays the organizer, who pays the platform its fee; a refund reverses ``amount``
        and ``fee`` of it (by default the whole charge and fee)."""
        sign = -1 if refund else 1
        amount = payment.amount_cents if amount is None else amount
        fee = payment.fee_cents if fee is None else fee
        ref = ref or (f"ticket:{payment.id}:refund" if refund else f"ticket:{payment.id}")
        await self._legs(
            session,
            payment,
            "refund" if refund else "charge",
            ref,
            [
                (CUSTOMER_ACCOUNT, payment.user_id, -sign * amount),
                (ORGANIZER_ACCOUNT, payment.organizer_id, sign * amount),
            ],
        )
        await self._legs(
            session,
            payment,
            "fee",
            ref,
            [
                (ORGANIZER_ACCOUNT, payment.organizer_id, -sign * fee),
                (REVENUE_ACCOUNT, None, sign * fee),
            ],
        )

    # ---- pay at venue ------------------------------------------------------------------------

    async def _rsvp_at_venue(self, actor: AccessClaims, event_id: uuid.UUID, data: RsvpRequest) -> TicketRsvpResult:
        result = await self._events.rsvp(actor, event_id, data)
        rsvp_id = ids.decode(ids.Prefix.RSVP, result.rsvp_id)
        async with self._sessions.begin() as session:
            event = await self._events.lock_event(session, event_id)
            rsvp = await session.scalar(
                select(Rsvp).where(Rsvp.id == rsvp_id).execution_options(populate_existing=True)
            )
            assert rsvp is not None
            live = await session.scalar(
                select(TicketPayment)
                .where(TicketPayment.rsvp_id == rsvp.id, TicketPayment.status.in_(LIVE_PAYMENT_STATUSES))
                .with_for_update()
            )
            if rsvp.status == RsvpStatus.CONFIRMED:
                if live is None:
                    session.add(self._venue_payment(event, rsvp, "unpaid"))
                elif live.status == "unpaid":
                    # More or fewer guests at the price this ticket was booked at, not today's.
                    live.seats, live.amount_cents = rsvp.seats, live.amount_cents // live.seats * rsvp.seats
            elif live is not None and live.status == "unpaid":
                live.status = "void"
            await session.flush()
            return await self._answer(session, rsvp)

    def _venue_payment(self, event: Event, rsvp: Rsvp, status: str) -> TicketPayment:
        payment_id = ids.uuid7()
        return TicketPayment(
            id=payment_id,
            event_id=event.id,
            rsvp_id=rsvp.id,
            user_id=rsvp.user_id,
            organizer_id=event.organizer_id,
            provider=PaymentProvider.PAY_AT_VENUE.value,
            status=status,
            seats=rsvp.seats,
            amount_cents=event.price_cents * rsvp.seats,
            currency=event.currency.lower(),
            fee_cents=0,
            refunded_cents=0,
            idempotency_key=f"venue-{payment_id}",
        )

    async def mark_paid(self, actor: AccessClaims, event_id: uuid.UUID, attendee: str) -> TicketInfo:
        """The organizer records that a pay-at-venue attendee (RSVP or user id) paid at the door; repeats are no-ops."""
        async with self._sessions.begin() as session:
            event = await self._events.lock_event(session, event_id)
            viewer = await self._events.rsvp_viewer(session, event, actor)
            if not viewer.editor:
                raise PermissionDenied("only the organizer can mark tickets paid", code="not_event_editor")
            if event.ticket_type != "paid" or event.payment_provider != PaymentProvider.PAY_AT_VENUE:
                raise Conflict("this event is not paid at the venue", code="not_pay_at_venue")
            condition = _attendee_condition(attendee)
            rsvp = await session.scalar(
                select(Rsvp).where(Rsvp.event_id == event.id, condition).execution_options(populate_existing=True)
            )
            if rsvp is None:
                raise NotFound("no such attendee at this event", code="attendee_not_found")
            if rsvp.status != RsvpStatus.CONFIRMED:
                raise Conflict(f"this RSVP is {rsvp.status}, not confirmed", code="not_confirmed")
            live = await session.scalar(
                select(TicketPayment)
                .where(TicketPayment.rsvp_id == rsvp.id, TicketPayment.status.in_(LIVE_PAYMENT_STATUSES))
                .with_for_update()
            )
            if live is None:
                live = self._venue_payment(event, rsvp, "paid")
                session.add(live)
            elif live.status == "unpaid":
                live.status = "paid"
            await session.flush()
            return _info(live)

    # ---- earnings and payouts ------------------------------------------------------------------

    async def _totals(self, session: AsyncSession, organizer_id: uuid.UUID) -> list[EventEarnings]:
        captured = TicketPayment.status.in_(("succeeded", "refunded"))
        card = TicketPayment.provider == PaymentProvider.STRIPE.value
        rows = (
            await session.execute(
                select(
                    TicketPayment.event_id,
                    Event.title,
                    func.min(TicketPayment.currency),
                    func.count().filter(card, TicketPayment.status == "succeeded"),
                    func.coalesce(func.sum(TicketPayment.amount_cents).filter(card, captured), 0),
                    func.coalesce(
                        func.sum(TicketPayment.fee_cents - TicketPayment.fee_refunded_cents).filter(card, captured), 0
                    ),
                    func.coalesce(func.sum(TicketPayment.refunded_cents).filter(card, captured), 0),
                    func.coalesce(
                        func.sum(TicketPayment.amount_cents).filter(
                            TicketPayment.provider == PaymentProvider.PAY_AT_VENUE.value, TicketPayment.status == "paid"
                        ),
                        0,
                    ),
                )
                .join(Event, Event.id == TicketPayment.event_id)
                .where(TicketPayment.organizer_id == organizer_id)
                .group_by(TicketPayment.event_id, Event.title)
                .order_by(TicketPayment.event_id)
            )
        ).all()
        return [
            EventEarnings(
                event_id=ids.encode(ids.Prefix.EVENT, event_id),
                title=title,
                currency=currency,
                tickets_sold=int(sold),
                gross_cents=int(gross),
                fee_cents=int(fees),
                refund_cents=int(refunds),
                net_cents=int(gross) - int(fees) - int(refunds),
                collected_at_venue_cents=int(venue),
            )
            for event_id, title, currency, sold, gross, fees, refunds, venue in rows
        ]

    async def _paid_out(self, session: AsyncSession, organizer_id: uuid.UUID) -> int:
        return int(
            await session.scalar(
                select(func.coalesce(func.sum(Payout.amount_cents), 0)).where(
                    Payout.organizer_id == organizer_id, Payout.status.in_(("paid", "pending"))
                )
            )
            or 0
        )

    async def earnings(self, actor: AccessClaims) -> Earnings:
        """The caller's ticket earnings as an organizer (all zero when they sold nothing)."""
        async with self._sessions() as session:
            events = await self._totals(session, actor.user_id)
            paid_out = await self._paid_out(session, actor.user_id)
        net = sum(e.net_cents for e in events)
        return Earnings(
            currency=PAYOUT_CURRENCY,
            gross_cents=sum(e.gross_cents for e in events),
            fee_cents=sum(e.fee_cents for e in events),
            refund_cents=sum(e.refund_cents for e in events),
            net_cents=net,
            paid_out_cents=paid_out,
            available_cents=net - paid_out,
            collected_at_venue_cents=sum(e.collected_at_venue_cents for e in events),
            platform_fee_bps=self._settings.platform_fee_bps,
            events=events,
        )

    async def create_payout(self, actor: AccessClaims, data: PayoutRequest) -> PayoutOut:
        """Pay out part or all of the available net; never more (one payout per organizer at a time)."""
        async with self._sessions.begin() as session:
            # Serialises payouts of one organizer, so two requests cannot both spend the same balance.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"payout:{actor.user_id}"}
            )
            events = await self._totals(session, actor.user_id)
            available = sum(e.net_cents for e in events) - await self._paid_out(session, actor.user_id)
            account = await session.get(PayoutAccount, actor.user_id)
            if account is None or account.provider != self._payouts.name:
                raise Conflict("set where payouts go first (PUT /v1/payouts/account)", code="payout_account_required")
            amount = data.amount_cents if data.amount_cents is not None else available
            if amount <= 0:
                raise Conflict("there is nothing to pay out", code="nothing_to_pay_out")
            if amount > available:
                raise Conflict(f"only {available} cents are available", code="insufficient_balance")
            payout = Payout(
                id=ids.uuid7(),
                organizer_id=actor.user_id,
                amount_cents=amount,
                currency=PAYOUT_CURRENCY,
                provider=self._payouts.name,
                status="pending",
                destination=account.destination,
            )
            session.add(payout)
            await session.flush()
            payout.status, payout.external_ref = await self._payouts.send(
                payout.id, amount, PAYOUT_CURRENCY, account.destination
            )
            payout.created_at = self._clock()
            await session.flush()
            return _payout_out(payout)

    async def set_payout_account(self, actor: AccessClaims, data: PayoutAccountIn) -> PayoutAccountOut:
        """Store (or replace) where the caller's payouts go, checked by the configured payout provider."""
        holder = data.holder_name.strip()
        if not holder:
            raise InvalidInput("the account holder's name is required", errors=[FieldError("holder_name", "blank")])
        destination = await self._payouts.check_destination(data.destination.strip())
        values = {"provider": self._payouts.name, "holder_name": holder, "destination": destination}
        async with self._sessions.begin() as session:
            await session.execute(
                insert(PayoutAccount)
                .values(organizer_id=actor.user_id, **values)
                .on_conflict_do_update(
                    index_elements=[PayoutAccount.organizer_id], set_={**values, "updated_at": func.now()}
                )
            )
            account = await session.scalar(
                select(PayoutAccount)
                .where(PayoutAccount.organizer_id == actor.user_id)
                .execution_options(populate_existing=True)
            )
            assert account is not None
            return _account_out(account)

    async def payout_account(self, actor: AccessClaims) -> PayoutAccountOut:
        """The caller's payout account; 404 when none is stored."""
        async with self._sessions() as session:
            account = await session.get(PayoutAccount, actor.user_id)
        if account is None:
            raise NotFound("no payout account yet", code="payout_account_not_found")
        return _account_out(account)

    async def list_payouts(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[PayoutOut]:
        """The caller's payouts, newest first."""
        size = clamp_limit(limit)
        query = select(Payout).where(Payout.organizer_id == actor.user_id)
        if cursor is not None:
            after = decode_cursor(cursor, PayoutCursor)
            try:
                query = query.where(Payout.id < ids.decode(ids.Prefix.PAYOUT, after.id))
            except ids.InvalidId:
                raise InvalidInput(code="invalid_cursor", errors=[FieldError("cursor", "invalid")]) from None
        async with self._sessions() as session:
            rows = list(await session.scalars(query.order_by(Payout.id.desc()).limit(size + 1)))
        return make_page([_payout_out(p) for p in rows], size, lambda p: PayoutCursor(id=p.payout_id))


def _payout_out(payout: Payout) -> PayoutOut:
    return PayoutOut(
        payout_id=ids.encode(ids.Prefix.PAYOUT, payout.id),
        amount_cents=payout.amount_cents,
        currency=payout.currency,
        provider=payout.provider,
        status=payout.status,
        external_ref=payout.external_ref,
        destination_last4=payout.destination[-4:] if payout.destination else None,
        created_at=payout.created_at,
    )


def _account_out(account: PayoutAccount) -> PayoutAccountOut:
    return PayoutAccountOut(
        provider=account.provider,
        holder_name=account.holder_name,
        destination_last4=account.destination[-4:],
        updated_at=account.updated_at,
    )


def _amount_refunded(intent: dict[str, Any]) -> int:
    """What was refunded of a PaymentIntent's charge (its ``latest_charge``, expanded by the re-fetch)."""
    charge = intent.get("latest_charge")
    return int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0


def _attendee_condition(attendee: str) -> Any:
    """``rsvp_...`` or ``usr_...`` → a condition on the RSVP; anything else is 404."""
    for prefix, column in ((ids.Prefix.RSVP, Rsvp.id), (ids.Prefix.USER, Rsvp.user_id)):
        try:
            return column == ids.decode(prefix, attendee)
        except ids.InvalidId:
            continue
    raise NotFound("no such attendee at this event", code="attendee_not_found")
