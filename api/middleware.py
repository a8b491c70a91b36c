"""Request id and access log: every response carries ``X-Request-Id``; every request one log line."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("api.access")


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if well-formed, else a new one; fixed once per request."""
    state = scope.setdefault("state", {})
    rid: str | None = state.get("request_id")
    if rid is None:
        incoming = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        state["request_id"] = rid
        state.setdefault("started", time.perf_counter())
    return rid


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Bind the request id to every log line written while the request runs."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=_request_id(scope))
        await app(scope, receive, send)

    return middleware


async def stamp_response(message: Message, scope: Scope) -> None:
    """Echo the request id and log the request as its response starts.

    This is a ``before_send`` hook rather than middleware because it must also see
    responses the framework builds for errors raised outside a route (401, 404).
    """
    if message["type"] != "http.response.start":
        return
    rid = _request_id(scope)
    MutableScopeHeaders.from_message(message)["x-request-id"] = rid
    started: float = scope["state"]["started"]
    log.info(
        "request",
        method=scope.get("method"),
        path=scope.get("path"),
        status=message["status"],
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        request_id=rid,
    )
