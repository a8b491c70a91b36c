"""Promo codes: ``/v1/admin/promo-codes`` (platform codes) and ``/v1/users|clubs/{id}/promo-codes`` (tier codes)."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.status_codes import HTTP_201_CREATED

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.promos import PromoCodeCreate, PromoCodeList, PromoCodeUpdate, PromoCodeView, PromoService


class PromoCodeController(Controller):
    """Platform promo code administration (admins only; others get 403)."""

    path = "/v1/admin/promo-codes"
    tags = ["payments", "admin"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: PromoCodeCreate, promo_service: PromoService, caller: AccessClaims) -> PromoCodeView:
        """Define a platform promo code (plans only): percent off the first invoice, optional cap and expiry."""
        return await promo_service.create(caller, data)

    @get("/")
    async def list_codes(self, promo_service: PromoService, caller: AccessClaims) -> PromoCodeList:
        """Every promo code, creators' and clubs' too, with its redemption count."""
        return await promo_service.list_codes(caller)

    @get("/{code:str}")
    async def show(self, code: str, promo_service: PromoService, caller: AccessClaims) -> PromoCodeView:
        """One promo code."""
        return await promo_service.get(caller, code)

    @patch("/{code:str}")
    async def update(
        self, code: str, data: PromoCodeUpdate, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeView:
        """Switch a promo code on or off."""
        return await promo_service.update(caller, code, data)


class TierPromoCodeController(Controller):
    """Promo codes a creator makes for their own tiers, or a club's owner for the club's tiers (others get 403)."""

    path = "/v1"
    tags = ["payments"]

    @post("/users/{user_id:str}/promo-codes", status_code=HTTP_201_CREATED)
    async def create_creator_code(
        self, user_id: str, data: PromoCodeCreate, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeView:
        """Define a code for your own tiers (your own id only)."""
        return await promo_service.create_owned(caller, data, user_id=parse_id(ids.Prefix.USER, user_id), club_id=None)

    @get("/users/{user_id:str}/promo-codes")
    async def list_creator_codes(
        self, user_id: str, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeList:
        """Your tier codes with their redemption counts."""
        return await promo_service.list_owned(caller, user_id=parse_id(ids.Prefix.USER, user_id), club_id=None)

    @patch("/users/{user_id:str}/promo-codes/{code:str}")
    async def update_creator_code(
        self, user_id: str, code: str, data: PromoCodeUpdate, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeView:
        """Switch one of your tier codes on or off."""
        return await promo_service.update_owned(
            caller, code, data, user_id=parse_id(ids.Prefix.USER, user_id), club_id=None
        )

    @post("/clubs/{club_id:str}/promo-codes", status_code=HTTP_201_CREATED)
    async def create_club_code(
        self, club_id: str, data: PromoCodeCreate, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeView:
        """Define a code for the tiers of a club you own."""
        return await promo_service.create_owned(caller, data, user_id=None, club_id=parse_id(ids.Prefix.CLUB, club_id))

    @get("/clubs/{club_id:str}/promo-codes")
    async def list_club_codes(self, club_id: str, promo_service: PromoService, caller: AccessClaims) -> PromoCodeList:
        """The club's tier codes (its owner)."""
        return await promo_service.list_owned(caller, user_id=None, club_id=parse_id(ids.Prefix.CLUB, club_id))

    @patch("/clubs/{club_id:str}/promo-codes/{code:str}")
    async def update_club_code(
        self, club_id: str, code: str, data: PromoCodeUpdate, promo_service: PromoService, caller: AccessClaims
    ) -> PromoCodeView:
        """Switch one of the club's codes on or off."""
        return await promo_service.update_owned(
            caller, code, data, user_id=None, club_id=parse_id(ids.Prefix.CLUB, club_id)
        )
