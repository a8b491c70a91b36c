"""``/v1/plans`` and ``/v1/payments``: premium plans, subscriptions, Stripe webhooks and payment history."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import idempotent_response, parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.idempotency import IdempotencyGuard
from shared.domain.payments.promos import PromoService
from shared.domain.payments.schemas import (
    CancelResult,
    PaymentEntry,
    PlanList,
    SubscribeRequest,
    SubscriptionView,
    WebhookAck,
)
from shared.domain.payments.services import PaymentService
from shared.domain.payments.tickets import TicketService
from shared.pagination import Page


class PlanController(Controller):
    """The premium plans on offer."""

    path = "/v1/plans"
    tags = ["payments"]

    @get("/")
    async def list_plans(self, payment_service: PaymentService) -> PlanList:
        """Every plan with its price and benefits."""
        return await payment_service.list_plans()


class PaymentController(Controller):
    """Subscriptions, webhooks and the caller's payment history."""

    path = "/v1/payments"
    tags = ["payments"]

    @post("/subscribe", status_code=HTTP_201_CREATED)
    async def subscribe(
        self,
        request: Request[AccessClaims, Any, Any],
        data: SubscribeRequest,
        payment_service: PaymentService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
        promo_service: PromoService,
    ) -> Response[bytes]:
        """Subscribe yourself to a plan; an ``Idempotency-Key`` header makes a retry replay the first answer.

        With a ``promo_code`` the first invoice is discounted; a card needing authentication gives
        ``status: incomplete`` and the ``client_secret`` to confirm it with.
        """
        stored = await idempotency.run(
            caller.user_id,
            "payments.subscribe",
            request.headers.get("idempotency-key"),
            data,
            HTTP_201_CREATED,
            lambda: promo_service.subscribe(caller, data),
        )
        return idempotent_response(stored)

    @post("/subscription/cancel", status_code=HTTP_200_OK)
    async def cancel(self, payment_service: PaymentService, caller: AccessClaims) -> CancelResult:
        """Cancel your subscription at the end of the paid period."""
        return await payment_service.cancel(caller)

    @post("/subscription/resume", status_code=HTTP_200_OK)
    async def resume(self, payment_service: PaymentService, caller: AccessClaims) -> SubscriptionView:
        """Keep a subscription that was set to cancel."""
        return await payment_service.resume(caller)

    @post("/webhook", status_code=HTTP_200_OK, exclude_from_auth=True)
    async def webhook(
        self, request: Request[Any, Any, Any], payment_service: PaymentService, ticket_service: TicketService
    ) -> WebhookAck:
        """Stripe events, signature-checked on the raw body."""
        payload = await request.body()
        ack = await payment_service.handle_webhook(payload, request.headers.get("stripe-signature"))
        if not ack.duplicate:
            # Verified and recorded once above; ticket payments reconcile from the same event.
            await ticket_service.reconcile(payload)
        return ack

    @get("/")
    async def history(
        self, payment_service: PaymentService, caller: AccessClaims, cursor: str | None = None, limit: int | None = None
    ) -> Page[PaymentEntry]:
        """Your own charges and refunds, newest first."""
        return await payment_service.list_payments(caller, cursor, limit)


class UserSubscriptionController(Controller):
    """A user's subscription."""

    path = "/v1/users/{user_id:str}/subscription"
    tags = ["payments"]

    @get("/")
    async def show(self, user_id: str, payment_service: PaymentService, caller: AccessClaims) -> SubscriptionView:
        """The user's current subscription (yourself, or anyone as an admin); 404 when none."""
        return await payment_service.get_subscription(caller, parse_id(ids.Prefix.USER, user_id))
