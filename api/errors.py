"""Every error leaves the API as RFC 9457 problem+json with a stable ``code``."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from shared.clock import utcnow
from shared.domain.payments.offers import offer_premium
from shared.errors import (
    BadRequest,
    Conflict,
    DomainError,
    FieldError,
    InvalidInput,
    NotFound,
    PaymentFailed,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

PROBLEM_JSON = "application/problem+json"
_UNKNOWN_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")
log = structlog.get_logger("api.errors")

_STATUS: dict[type[DomainError], int] = {
    BadRequest: 400,
    InvalidInput: 422,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    PaymentFailed: 402,
    Unavailable: 503,
}
_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document with our stable machine ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    """A problem+json response for ``request``."""
    body = Problem(
        type=f"/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=request.url.path,
        errors=errors or None,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    """Map a service's error to its HTTP status."""
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    errors = exc.errors if isinstance(exc, InvalidInput) else None
    return problem_response(request, status, exc.code, exc.title, exc.detail, errors, headers)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Map framework errors: malformed JSON is 400, a body that fails its schema 422."""
    if isinstance(exc.__cause__, SerializationException):
        return problem_response(request, 400, "malformed_json", "Malformed request body", f"invalid JSON: {exc.detail}")
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        return problem_response(request, 422, "validation_failed", "Validation failed", _summary(errors), errors)
    status = exc.status_code
    code = _CODE_BY_STATUS.get(status, "error")
    return problem_response(request, status, code, _title(status), str(exc.detail), headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Log the unexpected and answer 500 without internals."""
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", "something went wrong"
    )


def _field_errors(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", "invalid"))
            key = str(item.get("key") or "body")
            # msgspec names an unexpected field only inside its message.
            if key == "data" and (unknown := _UNKNOWN_FIELD.search(message)):
                key = unknown.group(1)
            errors.append(FieldError(key, message))
    return errors


def _summary(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors) or "the request did not pass validation"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def offer_premium_after_exception(exc: Exception, scope: Any) -> None:
    """``after_exception`` hook: a caller refused with 403 ``premium_required`` gets a daily ``premium_offer``."""
    if not isinstance(exc, DomainError) or exc.code != "premium_required":
        return
    user = scope.get("user")
    user_id = getattr(user, "user_id", None)
    runtime = getattr(scope["litestar_app"].state, "runtime", None)
    if user_id is None or runtime is None:
        return
    try:
        await offer_premium(runtime.sessions, user_id, utcnow(), exc.detail)
    except Exception:
        # The 403 still goes out; a missed nudge is not worth failing the request over.
        log.exception("premium_offer_failed")
