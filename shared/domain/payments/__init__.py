"""Payments: Stripe client, plans, subscriptions, webhooks and request idempotency."""
