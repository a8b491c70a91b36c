"""``/v1/admin/promo-codes``: admins define, list and switch off promo codes."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.status_codes import HTTP_201_CREATED

from shared.domain.auth.tokens import AccessClaims
from shared.domain.payments.promos import PromoCodeCreate, PromoCodeList, PromoCodeUpdate, PromoCodeView, PromoService


class PromoCodeController(Controller):
    """Promo code administration (admins only; others get 403)."""

    path = "/v1/admin/promo-codes"
    tags = ["payments", "admin"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: PromoCodeCreate, promo_service: PromoService, caller: AccessClaims) -> PromoCodeView:
        """Define a promo code: percent off the first invoice, optional cap and expiry."""
        return await promo_service.create(caller, data)

    @get("/")
    async def list_codes(self, promo_service: PromoService, caller: AccessClaims) -> PromoCodeList:
        """Every promo code with its redemption count."""
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
