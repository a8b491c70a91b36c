"""Discovery: recommendations (events, people, clubs), dismissals, icebreakers, places, curated lists, the map."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.discovery.schemas import (
    ClubRecommendation,
    ContentCaseView,
    ContentReportRequest,
    ContentResolveRequest,
    DismissRequest,
    EventRecommendation,
    IcebreakerToday,
    ListCreate,
    ListOut,
    ListUpdate,
    MapView,
    PersonRecommendation,
    PlaceCreate,
    PlaceOut,
    PlaceUpdate,
    Success,
)
from shared.domain.discovery.services import DiscoveryService, parse_layers
from shared.domain.events.services import parse_bbox
from shared.errors import FieldError, InvalidInput
from shared.pagination import Page


class RecommendationController(Controller):
    """What to do, whom to meet, which clubs to join."""

    tags = ["discovery"]

    @get("/v1/users/{user_id:str}/recommendations")
    async def people(
        self,
        user_id: str,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PersonRecommendation]:
        """People for you (only your own list)."""
        return await discovery_service.people_for(caller, parse_id(ids.Prefix.USER, user_id), cursor, limit)

    @get("/v1/events/recommendations")
    async def events(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        city: str | None = None,
        time_range: str | None = None,
        premium_only: bool = False,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[EventRecommendation]:
        """Events for you with a score and the reason."""
        return await discovery_service.events_for(
            caller, city=city, time_range=time_range, premium_only=premium_only, cursor=cursor, limit=limit
        )

    @get("/v1/clubs/recommendations")
    async def clubs(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[ClubRecommendation]:
        """Clubs for you."""
        return await discovery_service.clubs_for(caller, cursor, limit)

    @post("/v1/recommendations/dismiss", status_code=HTTP_200_OK)
    async def dismiss(self, data: DismissRequest, discovery_service: DiscoveryService, caller: AccessClaims) -> Success:
        """Not interested: the item is gone from your lists for good."""
        await discovery_service.dismiss(caller, data)
        return Success()

    @get("/v1/icebreakers/today")
    async def icebreaker_today(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        day: Annotated[date | None, Parameter(query="date")] = None,
    ) -> IcebreakerToday:
        """The prompt of the day (your local date, or ``date``)."""
        return await discovery_service.icebreaker_today(caller, day)

    @get("/v1/map")
    async def map_view(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        bbox: str | None = None,
        layers: str | None = None,
        start_from: Annotated[datetime | None, Parameter(query="from")] = None,
        start_to: Annotated[datetime | None, Parameter(query="to")] = None,
        category: str | None = None,
        premium_only: bool = False,
    ) -> MapView:
        """Map pins of events and places inside a bounding box."""
        if bbox is None:
            raise InvalidInput(errors=[FieldError("bbox", "required: minLng,minLat,maxLng,maxLat")])
        return await discovery_service.map_view(
            caller,
            bbox=parse_bbox(bbox),
            layers=parse_layers(layers),
            start_from=start_from,
            start_to=start_to,
            category=category,
            premium_only=premium_only,
        )


class PlaceController(Controller):
    """Must-visit places, kept by City Curators."""

    path = "/v1/places"
    tags = ["discovery"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: PlaceCreate, discovery_service: DiscoveryService, caller: AccessClaims) -> PlaceOut:
        """Add a place (curators)."""
        return await discovery_service.create_place(caller, data)

    @get("/")
    async def list_places(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        city: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PlaceOut]:
        """Places, newest first."""
        return await discovery_service.list_places(caller, city, category, cursor, limit)

    @get("/{place_id:str}")
    async def detail(self, place_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> PlaceOut:
        """One place."""
        return await discovery_service.get_place(caller, parse_id(ids.Prefix.PLACE, place_id))

    @patch("/{place_id:str}")
    async def update(
        self, place_id: str, data: PlaceUpdate, discovery_service: DiscoveryService, caller: AccessClaims
    ) -> PlaceOut:
        """Change a place (its curator)."""
        return await discovery_service.update_place(caller, parse_id(ids.Prefix.PLACE, place_id), data)

    @delete("/{place_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, place_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> None:
        """Remove a place (its curator or a moderator)."""
        await discovery_service.delete_place(caller, parse_id(ids.Prefix.PLACE, place_id))

    @post("/{place_id:str}/report", status_code=HTTP_201_CREATED)
    async def report(
        self, place_id: str, data: ContentReportRequest, discovery_service: DiscoveryService, caller: AccessClaims
    ) -> Response[ContentCaseView]:
        """Report a place to moderators; repeating an open report returns it with 200."""
        view, created = await discovery_service.report(caller, "place", parse_id(ids.Prefix.PLACE, place_id), data)
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class CuratedListController(Controller):
    """Ordered must-visit lists with notes."""

    path = "/v1/lists"
    tags = ["discovery"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: ListCreate, discovery_service: DiscoveryService, caller: AccessClaims) -> ListOut:
        """Create a list (curators)."""
        return await discovery_service.create_list(caller, data)

    @get("/")
    async def list_lists(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        city: str | None = None,
        curator_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[ListOut]:
        """Lists, newest first."""
        curator = parse_id(ids.Prefix.USER, curator_id) if curator_id is not None else None
        return await discovery_service.list_lists(caller, city, curator, cursor, limit)

    @get("/{list_id:str}")
    async def detail(self, list_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> ListOut:
        """One list with its places in order."""
        return await discovery_service.get_list(caller, parse_id(ids.Prefix.LIST, list_id))

    @patch("/{list_id:str}")
    async def update(
        self, list_id: str, data: ListUpdate, discovery_service: DiscoveryService, caller: AccessClaims
    ) -> ListOut:
        """Change a list (its curator); ``items`` replaces the order."""
        return await discovery_service.update_list(caller, parse_id(ids.Prefix.LIST, list_id), data)

    @delete("/{list_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, list_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> None:
        """Remove a list (its curator or a moderator)."""
        await discovery_service.delete_list(caller, parse_id(ids.Prefix.LIST, list_id))

    @post("/{list_id:str}/report", status_code=HTTP_201_CREATED)
    async def report(
        self, list_id: str, data: ContentReportRequest, discovery_service: DiscoveryService, caller: AccessClaims
    ) -> Response[ContentCaseView]:
        """Report a list to moderators; repeating an open report returns it with 200."""
        view, created = await discovery_service.report(caller, "list", parse_id(ids.Prefix.LIST, list_id), data)
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class ContentModerationController(Controller):
    """``/v1/moderation/content``: moderators review reports on places and lists, hide, remove and restore them."""

    path = "/v1/moderation/content"
    tags = ["moderation", "discovery"]

    @get("/cases")
    async def list_cases(
        self,
        discovery_service: DiscoveryService,
        caller: AccessClaims,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[ContentCaseView]:
        """Reports on places and lists, newest first."""
        return await discovery_service.list_cases(caller, status, cursor, limit)

    @post("/cases/{case_id:str}/resolve", status_code=HTTP_200_OK)
    async def resolve(
        self, case_id: str, data: ContentResolveRequest, discovery_service: DiscoveryService, caller: AccessClaims
    ) -> ContentCaseView:
        """Hide or remove the reported place or list, or dismiss the report."""
        return await discovery_service.resolve_case(caller, parse_id(ids.Prefix.CASE, case_id), data)

    @post("/places/{place_id:str}/restore", status_code=HTTP_204_NO_CONTENT)
    async def restore_place(self, place_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> None:
        """Show a hidden place again."""
        await discovery_service.restore(caller, "place", parse_id(ids.Prefix.PLACE, place_id))

    @post("/lists/{list_id:str}/restore", status_code=HTTP_204_NO_CONTENT)
    async def restore_list(self, list_id: str, discovery_service: DiscoveryService, caller: AccessClaims) -> None:
        """Show a hidden list again."""
        await discovery_service.restore(caller, "list", parse_id(ids.Prefix.LIST, list_id))
