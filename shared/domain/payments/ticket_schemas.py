"""Request and response bodies of paid tickets, earnings and payouts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared.domain.events.schemas import CalendarSync


class TicketInfo(msgspec.Struct, frozen=True):
    """The payment behind a ticket: ``pending``, ``succeeded``, ``refunded``, ``unpaid`` or ``paid`` (at the venue)."""

    payment_id: str
    status: str
    provider: str
    amount_cents: int
    refunded_cents: int
    currency: str
    seats: int


class TicketRsvpResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """The RSVP answer (seed 000 shape) plus, on paid events, the ticket's payment."""

    rsvp_id: str
    status: str
    calendar_sync: CalendarSync
    guest_count: int = 0
    waitlist_position: int | None = None
    hold_expires_at: datetime | None = None
    ticket: TicketInfo | None = None


class EventEarnings(msgspec.Struct, frozen=True):
    """One event's ticket money."""

    event_id: str
    title: str
    currency: str
    tickets_sold: int
    gross_cents: int
    fee_cents: int
    refund_cents: int
    net_cents: int
    collected_at_venue_cents: int


class Earnings(msgspec.Struct, frozen=True):
    """An organizer's ticket earnings: card sales net of platform fees and refunds, what was paid out, what is left."""

    currency: str
    gross_cents: int
    fee_cents: int
    refund_cents: int
    net_cents: int
    paid_out_cents: int
    available_cents: int
    collected_at_venue_cents: int
    platform_fee_bps: int
    events: list[EventEarnings]


class RefundRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Refund ``amount_cents`` of a ticket (default: all that is left); refunds never exceed the charge."""

    amount_cents: Annotated[int, msgspec.Meta(gt=0, le=100_000_000)] | None = None


class PayoutAccountIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where payouts go: a bank account reference (``manual``) or a Stripe Connect ``acct_...`` id."""

    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    destination: Annotated[str, msgspec.Meta(min_length=4, max_length=64)]


class PayoutAccountOut(msgspec.Struct, frozen=True):
    """The stored payout account; the destination is shown only by its last four characters."""

    provider: str
    holder_name: str
    destination_last4: str
    updated_at: datetime


class PayoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Pay out ``amount_cents`` (default: everything available) to the stored payout account."""

    amount_cents: Annotated[int, msgspec.Meta(gt=0, le=100_000_000)] | None = None


class PayoutOut(msgspec.Struct, frozen=True):
    """A payout record."""

    payout_id: str
    amount_cents: int
    currency: str
    provider: str
    status: str
    external_ref: str | None
    destination_last4: str | None
    created_at: datetime


class PayoutCursor(msgspec.Struct, frozen=True):
    """Keyset position in the payouts list (newest first)."""

    id: str
