"""Member tiers: ``/v1/users/{id}/tiers``, ``/v1/clubs/{id}/tiers``, ``/v1/tiers/{id}/subscribe|cancel``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import idempotent_response, parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.idempotency import IdempotencyGuard
from shared.domain.payments.member_tiers import (
    MemberTierService,
    TierCreate,
    TierEarnings,
    TierList,
    TierSubscribeRequest,
    TierView,
)
from shared.domain.payments.schemas import CancelResult


class MemberTierController(Controller):
    """Creators' and clubs' paid tiers, and subscribing to them."""

    path = "/v1"
    tags = ["payments"]

    @post("/users/{user_id:str}/tiers", status_code=HTTP_201_CREATED)
    async def create_creator_tier(
        self, user_id: str, data: TierCreate, member_tier_service: MemberTierService, caller: AccessClaims
    ) -> TierView:
        """Define a paid tier for your followers (your own id only)."""
        return await member_tier_service.create_creator_tier(caller, parse_id(ids.Prefix.USER, user_id), data)

    @get("/users/{user_id:str}/tiers")
    async def list_creator_tiers(self, user_id: str, member_tier_service: MemberTierService) -> TierList:
        """A creator's tiers, cheapest first."""
        return await member_tier_service.list_creator_tiers(parse_id(ids.Prefix.USER, user_id))

    @post("/clubs/{club_id:str}/tiers", status_code=HTTP_201_CREATED)
    async def create_club_tier(
        self, club_id: str, data: TierCreate, member_tier_service: MemberTierService, caller: AccessClaims
    ) -> TierView:
        """Define a paid membership tier of a club you own."""
        return await member_tier_service.create_club_tier(caller, parse_id(ids.Prefix.CLUB, club_id), data)

    @get("/clubs/{club_id:str}/tiers")
    async def list_club_tiers(self, club_id: str, member_tier_service: MemberTierService) -> TierList:
        """A club's tiers, cheapest first."""
        return await member_tier_service.list_club_tiers(parse_id(ids.Prefix.CLUB, club_id))

    @get("/tiers/earnings")
    async def earnings(self, member_tier_service: MemberTierService, caller: AccessClaims) -> TierEarnings:
        """What your tiers earned: gross, platform fees, refunds, net, and active subscribers."""
        return await member_tier_service.earnings(caller)

    @post("/tiers/{tier_id:str}/subscribe", status_code=HTTP_201_CREATED)
    async def subscribe(
        self,
        tier_id: str,
        request: Request[AccessClaims, Any, Any],
        data: TierSubscribeRequest,
        member_tier_service: MemberTierService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
    ) -> Response[bytes]:
        """Subscribe to a tier; an ``Idempotency-Key`` header makes a retry replay the first answer."""
        target = parse_id(ids.Prefix.MEMBER_TIER, tier_id)
        stored = await idempotency.run(
            caller.user_id,
            f"tiers.subscribe:{tier_id}",
            request.headers.get("idempotency-key"),
            data,
            HTTP_201_CREATED,
            lambda: member_tier_service.subscribe(caller, target, data),
        )
        return idempotent_response(stored)

    @post("/tiers/{tier_id:str}/cancel", status_code=HTTP_200_OK)
    async def cancel(self, tier_id: str, member_tier_service: MemberTierService, caller: AccessClaims) -> CancelResult:
        """Cancel your tier subscription at the end of the paid period."""
        return await member_tier_service.cancel(caller, parse_id(ids.Prefix.MEMBER_TIER, tier_id))
