"""Domain errors with stable machine codes; each edge maps them once (HTTP, gateway, worker)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One offending input field."""

    field: str
    message: str


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code: str = "error"
    title: str = "Request failed"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        super().__init__(self.detail)


class InvalidInput(DomainError):
    """The input is well-formed but breaks a rule."""

    code = "validation_failed"
    title = "Validation failed"

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, errors: Sequence[FieldError] = ()
    ) -> None:
        super().__init__(detail, code=code)
        self.errors = list(errors)


class BadRequest(DomainError):
    """The request itself is unacceptable (for example a bad signature)."""

    code = "bad_request"
    title = "Bad request"


class Unauthenticated(DomainError):
    """No valid credentials were presented."""

    code = "unauthenticated"
    title = "Authentication required"


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    code = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    """The object does not exist or is not visible to the caller."""

    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    """The request conflicts with the current state (duplicate, already done)."""

    code = "conflict"
    title = "Conflict"


class RateLimited(DomainError):
    """Too many requests; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PaymentFailed(DomainError):
    """The payment provider refused the charge."""

    code = "payment_failed"
    title = "Payment failed"


class Unavailable(DomainError):
    """A dependency is down; the caller may retry."""

    code = "unavailable"
    title = "Service unavailable"


class PremiumRequired(PermissionDenied):
    """403 ``premium_required``: the thing exists and is visible, but a subscription is needed to open it."""

    code = "premium_required"
    title = "Premium required"
