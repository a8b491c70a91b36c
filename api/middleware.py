"""Request id, access log and Prometheus metrics, as plain ASGI callables.

These run on every request, so they allocate nothing heavy per request: no
``Request`` objects, no header maps, no label dicts; metric children are looked
up once per (method, route, status) and reused.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from typing import cast

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from shared.errors import Unauthenticated

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ACCESS_LOGGER = "api.access"
log = structlog.get_logger(_ACCESS_LOGGER)
# The stdlib logger behind it, kept: ``logging.getLogger`` takes the module lock on every call.
_access_logger = logging.getLogger(_ACCESS_LOGGER)
_bind = structlog.contextvars.bind_contextvars
_unbind = structlog.contextvars.unbind_contextvars

APP_NAME = "tribe"
METRICS_PREFIX = "tribe_api"
_METRICS_PATH = "/metrics"


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if well-formed, else a new one; fixed once per request."""
    state = scope.setdefault("state", {})
    rid: str | None = state.get("request_id")
    if rid is None:
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                if _SAFE_ID.match(incoming):
                    rid = incoming
                break
        if rid is None:
            # 128 random bits as hex, without building a uuid.UUID.
            rid = os.urandom(16).hex()
        state["request_id"] = rid
        state.setdefault("started", time.perf_counter())
    return rid


async def stamp_response(message: Message, scope: Scope) -> None:
    """Echo the request id and log the request as its response starts.

    This is a ``before_send`` hook rather than middleware because it must also see
    responses the framework builds for errors raised outside a route (401, 404).
    """
    if message["type"] != "http.response.start":
        return
    rid = _request_id(scope)
    headers = message.get("headers")
    if isinstance(headers, list):
        headers.append((b"x-request-id", rid.encode("latin-1")))
    else:
        message["headers"] = [*(headers or ()), (b"x-request-id", rid.encode("latin-1"))]
    # The level check first: below INFO the access line is skipped before any formatting.
    if _access_logger.isEnabledFor(logging.INFO):
        started: float = scope["state"]["started"]
        log.info(
            "request",
            method=scope.get("method"),
            path=scope.get("path"),
            status=message["status"],
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=rid,
        )


class _Metrics:
    """The API's request metrics (same names and labels as Litestar's Prometheus plugin)."""

    def __init__(self) -> None:
        labels = ("method", "path", "status_code", "app_name")
        self.requests = Counter(f"{METRICS_PREFIX}_requests_total", "Total requests", labels)
        self.errors = Counter(f"{METRICS_PREFIX}_requests_error_total", "Total errors in requests", labels)
        self.duration = Histogram(f"{METRICS_PREFIX}_request_duration_seconds", "Request duration, in seconds", labels)
        self.in_progress = Gauge(
            f"{METRICS_PREFIX}_requests_in_progress",
            "Total requests currently in progress",
            ("method", "path", "status_code", "app_name"),
            multiprocess_mode="livesum",
        )
        self._done: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}
        self._running: dict[tuple[str, str], Gauge] = {}

    def running(self, method: str, path: str) -> Gauge:
        """The in-progress gauge child of one route (labelled 200, as the plugin did)."""
        key = (method, path)
        child = self._running.get(key)
        if child is None:
            child = self._running[key] = self.in_progress.labels(method, path, 200, APP_NAME)
        return child

    def finished(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one finished request and observe its duration."""
        key = (method, path, status)
        children = self._done.get(key)
        if children is None:
            values = (method, path, status, APP_NAME)
            error = self.errors.labels(*values) if status >= 500 else None
            children = self._done[key] = (self.requests.labels(*values), self.duration.labels(*values), error)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()


@functools.cache
def _metrics() -> _Metrics:
    # Built on first use, not at import; once per process since the registry is global.
    return _Metrics()


def _status_of(exc: BaseException) -> int:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    return 401 if isinstance(exc, Unauthenticated) else 500


def request_middleware(app: ASGIApp) -> ASGIApp:
    """Bind the request id to the request's log lines; count and time it per route template,
    method and status (``/metrics`` excluded).

    One ASGI layer rather than two: every layer is another coroutine frame on every request.
    """
    metrics = _metrics()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        # Each request runs in its own task (its own copy of the context), so only the
        # per-request keys need setting; clearing every context variable cost more.
        _unbind("user_id")
        _bind(request_id=_request_id(scope))
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(_METRICS_PATH):
            await app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope.get("path_template") or scope["path"]
        started = time.perf_counter()
        status = 200
        finished = started

        async def timed_send(message: Message) -> None:
            nonlocal status, finished
            kind = message["type"]
            if kind == "http.response.start":
                status = cast("HTTPResponseStartEvent", message)["status"]
            elif kind == "http.response.body":
                finished = time.perf_counter()
            await send(message)

        running = metrics.running(method, path)
        running.inc()
        try:
            await app(scope, receive, timed_send)
        except BaseException as exc:
            status, finished = _status_of(exc), time.perf_counter()
            raise
        finally:
            running.dec()
            metrics.finished(method, path, status, finished - started)

    return middleware
