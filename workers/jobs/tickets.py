"""Paid-ticket jobs: the hold/offer sweep and refunds of a cancelled event."""

from __future__ import annotations

from typing import Any

import structlog

from shared.bus import EventCancelled
from shared.domain.events.services import EventService
from shared.domain.payments.stripe_client import StripeGateway
from shared.domain.payments.tickets import TicketService
from workers.context import JobContext, WorkerResources, resources_of
from workers.jobs.base import JobSpec
from workers.jobs.media import media_service

log = structlog.stdlib.get_logger(__name__)


def ticket_service(res: WorkerResources) -> TicketService:
    """The tickets service on the worker's connections and clock."""
    events = EventService(res.settings, res.sessions, clock=res.clock, media=media_service(res))
    return TicketService(res.settings, res.sessions, events, StripeGateway(res.settings), clock=res.clock)


async def sweep_tickets(ctx: dict[Any, Any]) -> int:
    """Cron job: release holds and offers that ran out (offers pass down the waitlist); refund cancelled events."""
    res = resources_of(ctx)
    released = await ticket_service(res).sweep(res.clock())
    if released:
        log.info("tickets.holds_released", count=released)
    return released


async def refund_event_tickets(ctx: JobContext, event: EventCancelled) -> None:
    """Refund every paid ticket of a cancelled event; a rerun refunds nothing twice."""
    refunded = await ticket_service(ctx.resources).refund_event(event.event_id)
    log.info("tickets.event_refunded", event_id=str(event.event_id), count=refunded)


REFUND_EVENT_TICKETS = JobSpec(
    name="refund_event_tickets", payload_type=EventCancelled, run=refund_event_tickets, timeout_s=600
)
