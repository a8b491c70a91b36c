"""Paid tickets: organizer refunds, earnings, payouts and pay-at-venue check-off."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import idempotent_response, parse_id, provide_runtime
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.idempotency import IdempotencyGuard
from shared.domain.payments.stripe_client import StripeGateway
from shared.domain.payments.ticket_schemas import (
    Earnings,
    PayoutAccountIn,
    PayoutAccountOut,
    PayoutOut,
    PayoutRequest,
    RefundRequest,
    TicketInfo,
)
from shared.domain.payments.tickets import TicketService
from shared.pagination import Page

_STATE_KEY = "ticket_service"


def provide_ticket_service(state: State) -> TicketService:
    """The paid-tickets service, built once per app on first use."""
    service = state.get(_STATE_KEY)
    if not isinstance(service, TicketService):
        runtime = provide_runtime(state)
        service = TicketService(runtime.settings, runtime.sessions, runtime.events, StripeGateway(runtime.settings))
        state[_STATE_KEY] = service
    return service


class TicketRefundController(Controller):
    """``POST /v1/payments/{id}/refund``: an organizer refunds one ticket, in full or in part."""

    path = "/v1/payments"
    tags = ["payments"]

    @post("/{payment_id:str}/refund", status_code=HTTP_200_OK)
    async def refund(
        self,
        request: Request[AccessClaims, Any, Any],
        payment_id: str,
        ticket_service: TicketService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
        data: RefundRequest | None = None,
    ) -> Response[bytes]:
        """Refund ``amount_cents`` of a paid ticket, or all that is left (the event's organizer or an admin).

        Refunds add up to at most the charge (422 ``refund_exceeds_charge`` beyond it). The refund that
        completes the charge cancels the ticket and frees its seats; a partial one keeps the ticket.
        An ``Idempotency-Key`` header makes a retry replay the first answer instead of refunding again.
        """
        body = data or RefundRequest()
        payment = parse_id(ids.Prefix.TICKET_PAYMENT, payment_id)
        stored = await idempotency.run(
            caller.user_id,
            f"payments.refund:{payment_id}",
            request.headers.get("idempotency-key"),
            body,
            HTTP_200_OK,
            lambda: ticket_service.refund_by_organizer(caller, payment, body.amount_cents),
        )
        return idempotent_response(stored)


class EarningsController(Controller):
    """An organizer's ticket earnings."""

    path = "/v1/earnings"
    tags = ["payments"]

    @get("/")
    async def show(self, ticket_service: TicketService, caller: AccessClaims) -> Earnings:
        """Gross, platform fees, refunds and net, per event and in total, with what is available to pay out."""
        return await ticket_service.earnings(caller)


class PayoutController(Controller):
    """Payouts of an organizer's net earnings."""

    path = "/v1/payouts"
    tags = ["payments"]

    @get("/")
    async def list_payouts(
        self, ticket_service: TicketService, caller: AccessClaims, cursor: str | None = None, limit: int | None = None
    ) -> Page[PayoutOut]:
        """Your payouts, newest first."""
        return await ticket_service.list_payouts(caller, cursor, limit)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: PayoutRequest, ticket_service: TicketService, caller: AccessClaims) -> PayoutOut:
        """Pay out part or all of your available net earnings (409 ``insufficient_balance`` beyond it)."""
        return await ticket_service.create_payout(caller, data)

    @put("/account", status_code=HTTP_200_OK)
    async def set_account(
        self, data: PayoutAccountIn, ticket_service: TicketService, caller: AccessClaims
    ) -> PayoutAccountOut:
        """Store where your payouts go: a bank account (``manual``) or a Stripe Connect ``acct_...`` id."""
        return await ticket_service.set_payout_account(caller, data)

    @get("/account")
    async def show_account(self, ticket_service: TicketService, caller: AccessClaims) -> PayoutAccountOut:
        """Your payout account (the destination shown by its last four characters); 404 when none."""
        return await ticket_service.payout_account(caller)


class VenuePaymentController(Controller):
    """Pay at venue: the organizer records who paid at the door."""

    path = "/v1/events"
    tags = ["events"]

    @post("/{event_id:str}/attendees/{attendee:str}/mark-paid", status_code=HTTP_200_OK)
    async def mark_paid(
        self, event_id: str, attendee: str, ticket_service: TicketService, caller: AccessClaims
    ) -> TicketInfo:
        """Mark an attendee's pay-at-venue ticket paid (``attendee`` is an ``rsvp_`` or ``usr_`` id)."""
        return await ticket_service.mark_paid(caller, parse_id(ids.Prefix.EVENT, event_id), attendee)
