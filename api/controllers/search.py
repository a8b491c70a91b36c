"""``/v1/search``: users, clubs and posts the caller may see."""

from __future__ import annotations

from litestar import Controller, get

from shared.domain.auth.tokens import AccessClaims
from shared.domain.search.schemas import SearchHit
from shared.domain.search.services import SearchService
from shared.pagination import Page


class SearchController(Controller):
    """Typo-tolerant search."""

    path = "/v1/search"
    tags = ["search"]

    @get("/")
    async def search(
        self,
        search_service: SearchService,
        caller: AccessClaims,
        q: str | None = None,
        type: str | None = None,
        limit: int | None = None,
    ) -> Page[SearchHit]:
        """Ranked matches of one type (limit only; ``next_cursor`` is always null)."""
        return await search_service.search(caller, q, type, limit)
