"""Boosts: ``POST /v1/events/{id}/boost``, ``POST /v1/users/{id}/boost`` and ``GET /v1/boosts/{id}``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_201_CREATED

from api.deps import idempotent_response, parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.boosts import BoostRequest, BoostService, BoostView
from shared.domain.payments.idempotency import IdempotencyGuard


class BoostController(Controller):
    """Buy and read boosts; purchases honour an ``Idempotency-Key`` header."""

    path = "/v1"
    tags = ["payments"]

    @post("/events/{event_id:str}/boost", status_code=HTTP_201_CREATED)
    async def boost_event(
        self,
        event_id: str,
        request: Request[AccessClaims, Any, Any],
        data: BoostRequest,
        boost_service: BoostService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
    ) -> Response[bytes]:
        """Boost an event you organize (201 with the boost; ``status`` is ``scheduled`` or ``active``)."""
        target = parse_id(ids.Prefix.EVENT, event_id)
        stored = await idempotency.run(
            caller.user_id,
            f"boosts.event:{event_id}",
            request.headers.get("idempotency-key"),
            data,
            HTTP_201_CREATED,
            lambda: boost_service.boost_event(caller, target, data),
        )
        return idempotent_response(stored)

    @post("/users/{user_id:str}/boost", status_code=HTTP_201_CREATED)
    async def boost_user(
        self,
        user_id: str,
        request: Request[AccessClaims, Any, Any],
        data: BoostRequest,
        boost_service: BoostService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
    ) -> Response[bytes]:
        """Boost your own profile in search or the discover feed."""
        target = parse_id(ids.Prefix.USER, user_id)
        stored = await idempotency.run(
            caller.user_id,
            f"boosts.user:{user_id}",
            request.headers.get("idempotency-key"),
            data,
            HTTP_201_CREATED,
            lambda: boost_service.boost_user(caller, target, data),
        )
        return idempotent_response(stored)

    @get("/boosts/{boost_id:str}")
    async def show(self, boost_id: str, boost_service: BoostService, caller: AccessClaims) -> BoostView:
        """A boost you bought, with its live status."""
        return await boost_service.get_boost(caller, parse_id(ids.Prefix.BOOST, boost_id))
