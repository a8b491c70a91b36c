"""Double-entry bookings shared by boosts and member tiers (the subscription path keeps its own ``_book``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.domain.payments.models import LedgerEntry

CUSTOMER_ACCOUNT = "customer"
REVENUE_ACCOUNT = "platform_revenue"
CREATOR_ACCOUNT = "creator_earnings"
BPS = 10_000


def platform_fee(amount_cents: int, fee_bps: int) -> int:
    """The platform's cut of ``amount_cents`` at ``fee_bps`` basis points, rounded half up."""
    return (amount_cents * fee_bps + BPS // 2) // BPS


async def book(
    session: AsyncSession,
    *,
    now: datetime,
    kind: str,
    source_ref: str,
    description: str,
    currency: str,
    legs: list[tuple[str, uuid.UUID | None, int]],
) -> None:
    """One transaction of ``(account, user_id, amount)`` legs that must sum to zero; a replay books nothing."""
    if sum(amount for _, _, amount in legs) != 0:
        raise ValueError("ledger legs must sum to zero")
    transaction_id = ids.uuid7()
    rows: list[dict[str, Any]] = [
        {
            "id": ids.uuid7(),
            "transaction_id": transaction_id,
            "account": account,
            "user_id": user_id,
            "amount_cents": amount,
            "kind": kind,
            "currency": currency,
            "source_ref": source_ref,
            "description": description,
            "created_at": now,
        }
        for account, user_id, amount in legs
        if amount != 0
    ]
    if not rows:
        return
    await session.execute(
        insert(LedgerEntry).values(rows).on_conflict_do_nothing(index_elements=["source_ref", "kind", "account"])
    )


async def book_platform_charge(
    session: AsyncSession,
    *,
    now: datetime,
    source_ref: str,
    payer_id: uuid.UUID,
    amount_cents: int,
    currency: str,
    description: str,
) -> None:
    """The customer pays the platform (a boost)."""
    await book(
        session,
        now=now,
        kind="charge",
        source_ref=source_ref,
        description=description,
        currency=currency,
        legs=[(CUSTOMER_ACCOUNT, payer_id, -amount_cents), (REVENUE_ACCOUNT, None, amount_cents)],
    )


async def book_creator_charge(
    session: AsyncSession,
    *,
    now: datetime,
    source_ref: str,
    payer_id: uuid.UUID | None,
    creator_id: uuid.UUID,
    amount_cents: int,
    fee_bps: int,
    currency: str,
    description: str,
) -> None:
    """A subscriber pays a creator (or club owner): the creator earns the amount less the platform fee."""
    fee = platform_fee(amount_cents, fee_bps)
    await book(
        session,
        now=now,
        kind="charge",
        source_ref=source_ref,
        description=description,
        currency=currency,
        legs=[(CUSTOMER_ACCOUNT, payer_id, -amount_cents), (CREATOR_ACCOUNT, creator_id, amount_cents)],
    )
    await book(
        session,
        now=now,
        kind="fee",
        source_ref=source_ref,
        description=f"platform fee: {description}",
        currency=currency,
        legs=[(CREATOR_ACCOUNT, creator_id, -fee), (REVENUE_ACCOUNT, None, fee)],
    )


async def book_creator_refund(
    session: AsyncSession,
    *,
    now: datetime,
    charge_ref: str,
    invoice_ref: str,
    refunded_total: int,
    currency: str,
    description: str,
) -> bool:
    """Reverse (part of) the creator charge booked under ``invoice_ref``, as ticket refunds do.

    The creator gives back what was refunded and the platform the same share of its fee.
    ``refunded_total`` is the charge's cumulative refunded amount (Stripe's ``amount_refunded``), so
    a later partial refund books only what is new, under ``<charge>:<total>``; a replay books
    nothing. The caller holds a lock on the charge so two refund events cannot both book the same
    part. ``False`` when no creator charge is booked under ``invoice_ref``.
    """
    booked = {
        (kind, account): (user_id, int(amount))
        for kind, account, user_id, amount in (
            await session.execute(
                select(LedgerEntry.kind, LedgerEntry.account, LedgerEntry.user_id, LedgerEntry.amount_cents).where(
                    LedgerEntry.source_ref == invoice_ref
                )
            )
        ).all()
    }
    creator_charge = booked.get(("charge", CREATOR_ACCOUNT))
    if creator_charge is None:
        return False
    creator_id, gross = creator_charge
    assert creator_id is not None
    payer_id = booked.get(("charge", CUSTOMER_ACCOUNT), (None, 0))[0]
    fee = -booked.get(("fee", CREATOR_ACCOUNT), (None, 0))[1]
    earlier = {
        str(kind): int(total)
        for kind, total in (
            await session.execute(
                select(LedgerEntry.kind, func.sum(LedgerEntry.amount_cents))
                .where(
                    LedgerEntry.account == CREATOR_ACCOUNT,
                    LedgerEntry.source_ref.startswith(f"{charge_ref}:", autoescape=True),
                )
                .group_by(LedgerEntry.kind)
            )
        ).all()
    }
    refunded = min(refunded_total, gross)
    refund_delta = refunded + earlier.get("refund", 0)  # earlier creator refund legs are negative
    if refund_delta <= 0:
        return True
    # The fee goes back in proportion to what was refunded; a full refund returns all of it.
    fee_delta = (fee * refunded + gross // 2) // gross - earlier.get("fee", 0)
    source_ref = f"{charge_ref}:{refunded}"
    await book(
        session,
        now=now,
        kind="refund",
        source_ref=source_ref,
        description=description,
        currency=currency,
        legs=[(CUSTOMER_ACCOUNT, payer_id, refund_delta), (CREATOR_ACCOUNT, creator_id, -refund_delta)],
    )
    await book(
        session,
        now=now,
        kind="fee",
        source_ref=source_ref,
        description=f"platform fee returned: {description}",
        currency=currency,
        legs=[(CREATOR_ACCOUNT, creator_id, fee_delta), (REVENUE_ACCOUNT, None, -fee_delta)],
    )
    return True
