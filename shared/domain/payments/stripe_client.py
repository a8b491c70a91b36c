"""The one place that talks to Stripe: the official SDK's async calls, vendor errors mapped to domain errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe

from shared.config import Settings
from shared.errors import BadRequest, FieldError, InvalidInput, NotFound, PaymentFailed, Unavailable

T = TypeVar("T")

# Stripe signs ``<timestamp>.<body>``; events older than this are refused as replays.
SIGNATURE_TOLERANCE_SECONDS = 300


class StripeNotFound(NotFound):
    """Stripe has no such object."""

    code = "stripe_object_not_found"


class StripeGateway:
    """Typed wrappers over the Stripe calls Tribe makes; every POST carries an Idempotency-Key."""

    def __init__(self, settings: Settings) -> None:
        self._client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=stripe.HTTPXClient(),
            max_network_retries=2,
        )
        self._webhook_secret = settings.stripe_webhook_secret

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except stripe.CardError as exc:
            raise PaymentFailed(exc.user_message or str(exc.user_message or "card declined")) from exc
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise StripeNotFound(exc.user_message or "no such Stripe object") from exc
            raise Unavailable("the payment provider rejected the request") from exc
        except stripe.StripeError as exc:
            # localstripe (and Stripe for some flows) answers a decline with a bare 402.
            if exc.http_status == 402:
                raise PaymentFailed(exc.user_message or "card declined") from exc
            raise Unavailable("the payment provider is unavailable") from exc

    async def ensure_product(self, product_id: str, name: str) -> None:
        """Create the product unless it exists."""
        try:
            await self._call(lambda: self._client.products.retrieve_async(product_id))
        except StripeNotFound:
            await self._call(
                lambda: self._client.products.create_async(
                    {"id": product_id, "name": name}, {"idempotency_key": f"product-{product_id}"}
                )
            )

    async def ensure_plan(self, plan_id: str, product_id: str, amount_cents: int, currency: str, interval: str) -> None:
        """Create the recurring plan (a price with a stable id) unless it exists."""
        try:
            await self._call(lambda: self._client.plans.retrieve_async(plan_id))
        except StripeNotFound:
            params: Any = {
                "id": plan_id,
                "product": product_id,
                "amount": amount_cents,
                "currency": currency,
                "interval": interval,
            }
            await self._call(lambda: self._client.plans.create_async(params, {"idempotency_key": f"plan-{plan_id}"}))

    async def create_customer(self, email: str, user_ref: str, idempotency_key: str) -> str:
        """A new customer; the key makes a retried sign-up return the same one."""
        params: Any = {"email": email, "metadata": {"user_id": user_ref}}
        customer = await self._call(
            lambda: self._client.customers.create_async(params, {"idempotency_key": idempotency_key})
        )
        return str(customer.id)

    async def set_default_payment_method(self, customer_id: str, payment_method_id: str, idempotency_key: str) -> None:
        """Attach the payment method and make it the customer's default for invoices."""
        try:
            await self._call(
                lambda: self._client.payment_methods.attach_async(
                    payment_method_id, {"customer": customer_id}, {"idempotency_key": f"{idempotency_key}-attach"}
                )
            )
        except StripeNotFound:
            raise InvalidInput(
                "unknown payment method",
                code="invalid_payment_method",
                errors=[],
            ) from None
        params: Any = {"invoice_settings": {"default_payment_method": payment_method_id}}
        await self._call(
            lambda: self._client.customers.update_async(
                customer_id, params, {"idempotency_key": f"{idempotency_key}-default"}
            )
        )

    async def retrieve_subscription(self, subscription_id: str) -> stripe.Subscription:
        """The subscription as Stripe has it now."""
        return await self._call(lambda: self._client.subscriptions.retrieve_async(subscription_id))

    async def set_cancel_at_period_end(
        self, subscription_id: str, cancel: bool, idempotency_key: str
    ) -> stripe.Subscription:
        """Cancel at the end of the paid period, or undo that."""
        params: Any = {"cancel_at_period_end": cancel}
        return await self._call(
            lambda: self._client.subscriptions.update_async(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        )

    async def charge_payment_method(
        self, amount_cents: int, currency: str, payment_method_id: str, metadata: dict[str, str], idempotency_key: str
    ) -> stripe.PaymentIntent:
        """Create and confirm a PaymentIntent now; a decline raises :class:`PaymentFailed` with its reason."""
        params: Any = {
            "amount": amount_cents,
            "currency": currency.lower(),
            "payment_method": payment_method_id,
            "confirm": True,
            "metadata": metadata,
        }
        try:
            return await self._call(
                lambda: self._client.payment_intents.create_async(params, {"idempotency_key": idempotency_key})
            )
        except StripeNotFound:
            raise InvalidInput("unknown payment method", code="invalid_payment_method", errors=[]) from None

    async def refund_payment_intent(
        self, payment_intent_id: str, idempotency_key: str, amount_cents: int | None = None
    ) -> stripe.Refund:
        """Refund ``amount_cents`` of a PaymentIntent (all of it by default); the key makes a retry a no-op."""
        params: Any = {"payment_intent": payment_intent_id}
        if amount_cents is not None:
            params["amount"] = amount_cents
        return await self._call(lambda: self._client.refunds.create_async(params, {"idempotency_key": idempotency_key}))

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        """The PaymentIntent as Stripe has it now, with its latest charge (and so what was refunded) expanded."""
        params: Any = {"expand": ["latest_charge"]}
        intent = await self._call(lambda: self._client.payment_intents.retrieve_async(payment_intent_id, params))
        return intent.to_dict()

    async def connected_account_ready(self, account_id: str) -> bool:
        """Whether a Connect account exists and can receive transfers (404 → :class:`StripeNotFound`)."""
        account = await self._call(lambda: self._client.accounts.retrieve_async(account_id))
        return bool(account.to_dict().get("payouts_enabled", True))

    async def transfer_to_account(
        self, amount_cents: int, currency: str, destination: str, idempotency_key: str
    ) -> stripe.Transfer:
        """Move money to a Connect account (organizer payouts in production)."""
        params: Any = {"amount": amount_cents, "currency": currency.lower(), "destination": destination}
        return await self._call(
            lambda: self._client.transfers.create_async(params, {"idempotency_key": idempotency_key})
        )

    async def invoice_of_payment_intent(self, payment_intent_id: str) -> str | None:
        """The invoice a PaymentIntent paid, or ``None`` (a boost's or ticket's intent has none).

        Older API versions (and localstripe) put ``invoice`` on the intent; current ones dropped it,
        and the invoice is found through the invoice payments list instead.
        """
        intent = (await self._call(lambda: self._client.payment_intents.retrieve_async(payment_intent_id))).to_dict()
        if "invoice" in intent:
            return str(intent["invoice"]) if intent["invoice"] else None
        params: Any = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}, "limit": 1}
        found = await self._call(lambda: self._client.invoice_payments.list_async(params))
        return next((str(p.invoice) for p in found.data), None)

    async def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice as Stripe has it now."""
        invoice = await self._call(lambda: self._client.invoices.retrieve_async(invoice_id))
        return invoice.to_dict()

    def verify_event(self, payload: bytes, signature: str | None) -> stripe.Event:
        """The event in a webhook body whose signature is valid and fresh; anything else is 400."""
        if not signature:
            raise BadRequest("missing Stripe-Signature header", code="invalid_signature")
        try:
            return self._client.construct_event(
                payload, signature, self._webhook_secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            raise BadRequest("the webhook signature is invalid or stale", code="invalid_signature") from None
        except ValueError:
            raise BadRequest("the webhook body is not a Stripe event", code="invalid_signature") from None

    # ---- boosts, promo codes and member tiers (additive; the calls above are unchanged) ----

    async def charge_once(
        self,
        customer_id: str,
        payment_method_id: str,
        amount_cents: int,
        currency: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> stripe.PaymentIntent:
        """Attach the card, then create and confirm a PaymentIntent now; a decline raises :class:`PaymentFailed`."""
        try:
            await self._call(
                lambda: self._client.payment_methods.attach_async(
                    payment_method_id, {"customer": customer_id}, {"idempotency_key": f"{idempotency_key}-attach"}
                )
            )
        except StripeNotFound:
            raise InvalidInput(
                "unknown payment method",
                code="invalid_payment_method",
                errors=[FieldError("payment_method_id", "unknown payment method")],
            ) from None
        params: Any = {
            "amount": amount_cents,
            "currency": currency,
            "customer": customer_id,
            "payment_method": payment_method_id,
            "metadata": metadata,
            "confirm": True,
        }
        try:
            return await self._call(
                lambda: self._client.payment_intents.create_async(params, {"idempotency_key": idempotency_key})
            )
        except StripeNotFound:
            raise InvalidInput(
                "unknown payment method",
                code="invalid_payment_method",
                errors=[FieldError("payment_method_id", "unknown payment method")],
            ) from None

    async def add_invoice_credit(
        self, customer_id: str, amount_cents: int, currency: str, description: str, idempotency_key: str
    ) -> str:
        """A negative pending invoice item: the customer's next invoice (a new subscription's first) is reduced.

        This is how a promo code changes the amount charged: localstripe does not apply coupons to
        subscriptions, and with Stripe a pending credit is billed on the next invoice the same way.
        """
        params: Any = {
            "customer": customer_id,
            "amount": -amount_cents,
            "currency": currency,
            "description": description,
        }
        item = await self._call(
            lambda: self._client.invoice_items.create_async(params, {"idempotency_key": idempotency_key})
        )
        return str(item.id)

    async def remove_invoice_item(self, invoice_item_id: str) -> None:
        """Withdraw a pending invoice item (a credit whose subscription was never created)."""
        try:
            await self._call(lambda: self._client.invoice_items.delete_async(invoice_item_id))
        except StripeNotFound:
            return

    async def create_subscription_awaiting_action(
        self, customer_id: str, plan_id: str, metadata: dict[str, str], idempotency_key: str
    ) -> stripe.Subscription:
        """Subscribe and try the first invoice; a card that needs authentication leaves it ``incomplete``.

        A plain decline still raises :class:`PaymentFailed` (the incomplete subscription is cancelled).
        """
        params: Any = {
            "customer": customer_id,
            "items": [{"plan": plan_id}],
            "metadata": metadata,
            "payment_behavior": "allow_incomplete",
        }
        remote = await self._call(
            lambda: self._client.subscriptions.create_async(params, {"idempotency_key": idempotency_key})
        )
        if remote.status != "incomplete":
            return remote
        intent = await self._first_payment_intent(remote)
        if intent is not None and intent.status in ("requires_action", "requires_confirmation"):
            return remote
        await self.cancel_subscription_now(str(remote.id))
        message = "card declined"
        error = (intent.to_dict().get("last_payment_error") if intent is not None else None) or {}
        message = str(error.get("message") or message)
        raise PaymentFailed(message)

    async def _first_payment_intent(self, remote: stripe.Subscription) -> stripe.PaymentIntent | None:
        invoice_id = remote.to_dict().get("latest_invoice")
        if not invoice_id:
            return None
        invoice = await self._call(lambda: self._client.invoices.retrieve_async(str(invoice_id)))
        intent_id = invoice.to_dict().get("payment_intent")
        if not intent_id:
            return None
        return await self._call(lambda: self._client.payment_intents.retrieve_async(str(intent_id)))

    async def subscription_client_secret(self, remote: stripe.Subscription) -> str | None:
        """The client secret of an incomplete subscription's first payment, for the app to authenticate."""
        intent = await self._first_payment_intent(remote)
        return str(intent.client_secret) if intent is not None and intent.client_secret else None

    async def cancel_subscription_now(self, subscription_id: str) -> None:
        """End a subscription immediately (no idempotency key: a repeat of a delete is a 404, ignored)."""
        try:
            await self._call(lambda: self._client.subscriptions.cancel_async(subscription_id))
        except StripeNotFound:
            return
