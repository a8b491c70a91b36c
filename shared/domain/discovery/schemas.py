"""Request and response bodies of discovery (seed 000 §2.1/§2.2 recommendation shapes, places, lists, map)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from shared.domain.media.schemas import MediaView

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9 _-]*$")]
City = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
MediaUrl = Annotated[str, msgspec.Meta(max_length=1024, pattern=r"^https?://\S+$")]
Note = Annotated[str, msgspec.Meta(max_length=1000)]
MediaIds = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=10)]


class PersonRecommendation(msgspec.Struct):
    """A person for you (seed 000 §2.1)."""

    id: str
    display_name: str
    mutual_interests: list[str]
    shared_clubs: list[str]
    compatibility_score: float
    icebreaker_prompt: str
    reason: str


class EventRecommendation(msgspec.Struct):
    """An event for you (seed 000 §2.2)."""

    id: str
    title: str
    start_time: datetime
    score: float
    reason: str
    city: str | None


class ClubRecommendation(msgspec.Struct):
    """A club for you."""

    id: str
    name: str
    city: str | None
    member_count: int
    score: float
    reason: str


class DismissRequest(msgspec.Struct, forbid_unknown_fields=True):
    """ "Not interested" in one recommended item."""

    kind: Literal["event", "person", "club"]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Success(msgspec.Struct):
    """A bare acknowledgement."""

    success: bool = True


class Icebreaker(msgspec.Struct):
    """One prompt of the catalog."""

    id: str
    text: str
    topic: str | None


class IcebreakerToday(msgspec.Struct):
    """The prompt of one day (the caller's local date unless one is asked for)."""

    date: date
    prompt: Icebreaker


class PlaceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new place (curators)."""

    name: Name
    category: Category
    city: City
    latitude: Latitude
    longitude: Longitude
    description: Description | None = None
    media_urls: Annotated[list[MediaUrl], msgspec.Meta(max_length=10)] = msgspec.field(default_factory=list)
    is_premium: bool = False
    # Uploads (purpose ``place``) the caller owns and that are ready, in display order.
    media_ids: MediaIds = msgspec.field(default_factory=list)


class PlaceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields of a place its curator may change."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    media_urls: Annotated[list[MediaUrl], msgspec.Meta(max_length=10)] | msgspec.UnsetType = msgspec.UNSET
    is_premium: bool | msgspec.UnsetType = msgspec.UNSET
    media_ids: MediaIds | msgspec.UnsetType = msgspec.UNSET


class PlaceOut(msgspec.Struct):
    """A place."""

    id: str
    name: str
    category: str
    city: str
    latitude: float
    longitude: float
    description: str | None
    media_urls: list[str]
    is_premium: bool
    created_by: str
    created_at: datetime
    media_ids: list[str] = msgspec.field(default_factory=list)
    # The attached uploads that are ready, with their URLs.
    media: list[MediaView] = msgspec.field(default_factory=list)


class ListItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """A place on a list, with a note; order is the array order."""

    place_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    note: Note | None = None


class ListCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new must-visit list (curators)."""

    title: Name
    description: Description | None = None
    city: City | None = None
    items: Annotated[list[ListItemIn], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class ListUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Changes to a list; ``items`` replaces the whole ordered list."""

    title: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    items: Annotated[list[ListItemIn], msgspec.Meta(max_length=100)] | msgspec.UnsetType = msgspec.UNSET


class ListItemOut(msgspec.Struct):
    """One stop on a list."""

    position: int
    note: str | None
    place: PlaceOut


class ListOut(msgspec.Struct):
    """A curated list with its places in order."""

    id: str
    title: str
    description: str | None
    city: str | None
    curator_id: str
    items: list[ListItemOut]
    created_at: datetime


class MapPin(msgspec.Struct):
    """One pin of the map overlay."""

    layer: Literal["events", "places"]
    id: str
    title: str
    latitude: float
    longitude: float
    category: str | None
    premium: bool
    start_time: datetime | None


class MapView(msgspec.Struct):
    """Pins inside the box, at most ``limit`` per layer; ``truncated`` when there were more."""

    pins: list[MapPin]
    truncated: bool


class ContentReportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Why the caller reports a place or a list."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class ContentResolveRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A moderator's decision on a report: hide the item, remove it, or close the report without action."""

    action: Literal["hide", "remove", "dismiss"]
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class ContentCaseView(msgspec.Struct, kw_only=True):
    """A report on a place or a list (one of ``place_id``/``list_id``) and where it stands."""

    id: str
    place_id: str | None
    list_id: str | None
    reporter_id: str
    reason: str
    status: str
    resolution: str | None
    note: str | None
    resolved_by: str | None
    created_at: datetime
    resolved_at: datetime | None
