"""Request and response bodies of the events endpoints (seed 000 §2.2 shapes plus issue 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.domain.media.schemas import (
    ContentType,
    FileName,
    MediaTypeName,
    MediaView,
    PresignedPostForm,
    SizeBytes,
)

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=140)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=10)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
GuestCount = Annotated[int, msgspec.Meta(ge=0, le=5)]
PriceCents = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
TimezoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
SkillLevel = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
PublicId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TicketCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
VisibilityName = Literal["public", "club", "private"]
KindName = Literal["event", "activity"]
AddressVisibilityName = Literal["public", "attendees"]
EventStatusName = Literal["draft", "published", "cancelled", "completed"]
RsvpAnswer = Literal["going", "maybe", "not_going"]
RsvpStatusName = Literal[
    "confirmed", "waitlisted", "pending_approval", "maybe", "cancelled", "rejected", "held", "offered"
]
PaymentProviderName = Literal["stripe", "pay_at_venue"]
RefundHours = Annotated[int, msgspec.Meta(ge=0, le=24 * 365)]
SyncState = Literal["synced", "not_connected"]
TierName = Literal["plus", "pro"]
# Checked against AutoApproveRule by the service, so an unknown rule gets a clear 422 naming the rules.
AutoApproveRules = Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]], msgspec.Meta(max_length=3)]


class LocationIn(msgspec.Struct, forbid_unknown_fields=True):
    """Where an event happens; ``address`` may be shown to confirmed attendees only."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    latitude: Latitude
    longitude: Longitude
    address: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    city: Annotated[str, msgspec.Meta(max_length=120)] | None = None


class TicketingIn(msgspec.Struct, forbid_unknown_fields=True):
    """Free or paid; payment itself comes with the payments feature."""

    type: Literal["free", "paid"] = "free"
    price_cents: PriceCents = 0
    currency: Currency = "USD"
    # Paid events: card through Stripe, or pay at the venue; full refund when cancelled this long before.
    payment_provider: PaymentProviderName = "stripe"
    refund_until_hours: RefundHours = 24


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new event (seed 000 body plus issue 4 fields); it starts as a draft."""

    title: Title
    start_time: datetime
    end_time: datetime
    location: LocationIn
    description: Description | None = None
    timezone: TimezoneName = "UTC"
    address_visibility: AddressVisibilityName = "public"
    capacity: Capacity | None = None
    club_id: PublicId | None = None
    tags: Tags = msgspec.field(default_factory=list)
    visibility: VisibilityName = "public"
    kind: KindName = "event"
    skill_level: SkillLevel | None = None
    requires_approval: bool = False
    ticketing: TicketingIn = msgspec.field(default_factory=TicketingIn)
    # Who skips approval on a gated event: club_members, friends_of_organizer, vouched_by_organizer.
    auto_approve: AutoApproveRules = msgspec.field(default_factory=list)
    # Only plus/pro subscribers (pro also passes plus) may RSVP going or maybe; others see the event locked.
    required_tier: TierName | None = None


class EventUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields the organizer or a club admin may change; absent fields stay."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    start_time: datetime | msgspec.UnsetType = msgspec.UNSET
    end_time: datetime | msgspec.UnsetType = msgspec.UNSET
    timezone: TimezoneName | msgspec.UnsetType = msgspec.UNSET
    location: LocationIn | msgspec.UnsetType = msgspec.UNSET
    address_visibility: AddressVisibilityName | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    visibility: VisibilityName | msgspec.UnsetType = msgspec.UNSET
    skill_level: SkillLevel | msgspec.UnsetType | None = msgspec.UNSET
    requires_approval: bool | msgspec.UnsetType = msgspec.UNSET
    ticketing: TicketingIn | msgspec.UnsetType = msgspec.UNSET
    auto_approve: AutoApproveRules | msgspec.UnsetType = msgspec.UNSET
    required_tier: TierName | msgspec.UnsetType | None = msgspec.UNSET


class CreatedEvent(msgspec.Struct):
    """What creating an event answers."""

    id: str
    status: EventStatusName
    created_at: datetime


class StatusChange(msgspec.Struct):
    """The event's status after publish, cancel or complete."""

    status: EventStatusName


class Location(msgspec.Struct):
    """A location as its viewer may see it: rounded to ~1 km and without address unless allowed."""

    name: str
    latitude: float
    longitude: float
    address: str | None
    city: str | None
    precise: bool


class AttendeePreview(msgspec.Struct):
    """One confirmed attendee in a preview."""

    user_id: str
    display_name: str
    avatar_url: str | None


class AttendeesSummary(msgspec.Struct):
    """Confirmed seats and a few faces."""

    count: int
    preview: list[AttendeePreview]


class Ticketing(msgspec.Struct):
    """Ticketing with its derived status."""

    type: Literal["free", "paid"]
    price_cents: int
    currency: str
    status: Literal["open", "sold_out", "closed"]
    payment_provider: PaymentProviderName = "stripe"
    refund_until_hours: int = 24


class MyRsvp(msgspec.Struct):
    """The caller's own RSVP."""

    rsvp_id: str
    status: RsvpStatusName
    guest_count: int
    waitlist_position: int | None
    ticket_code: str | None


class EventDetail(msgspec.Struct):
    """An event as its viewer may see it."""

    id: str
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    timezone: str
    location: Location
    address_visibility: AddressVisibilityName
    capacity: int | None
    attendees: AttendeesSummary
    # Ready media uploaded for this event, oldest first.
    media: list[MediaView]
    ticketing: Ticketing
    waitlist_count: int
    my_rsvp: MyRsvp | None
    share_url: str
    status: EventStatusName
    visibility: VisibilityName
    kind: KindName
    skill_level: str | None
    open_spots: int | None
    requires_approval: bool
    tags: list[str]
    club_id: str | None
    organizer_id: str
    can_edit: bool
    created_at: datetime
    updated_at: datetime
    auto_approve: list[str] = msgspec.field(default_factory=list)
    required_tier: TierName | None = None
    # True when the event needs a tier the caller does not have (they cannot RSVP going or maybe).
    locked: bool = False


class EventSummary(msgspec.Struct):
    """An event in a discovery list."""

    id: str
    title: str
    start_time: datetime
    end_time: datetime
    location: Location
    kind: KindName
    tags: list[str]
    capacity: int | None
    open_spots: int | None
    club_id: str | None
    share_url: str
    distance_km: float | None
    required_tier: TierName | None = None
    locked: bool = False


class PublicEvent(msgspec.Struct):
    """The share page: minimal fields, no private address, no attendee identities."""

    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    timezone: str
    location: Location
    kind: KindName
    status: EventStatusName
    attendee_count: int
    organizer_name: str
    share_url: str


class RsvpRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An RSVP; ``payment_method_id`` is accepted for paid events (charged by the payments feature)."""

    status: RsvpAnswer
    guest_count: GuestCount = 0
    payment_method_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class CalendarSync(msgspec.Struct):
    """Whether the caller's calendar subscription will show this event."""

    google: SyncState
    apple: SyncState


class RsvpResult(msgspec.Struct, omit_defaults=True):
    """What an RSVP answers (seed 000 shape)."""

    rsvp_id: str
    status: RsvpStatusName
    calendar_sync: CalendarSync
    guest_count: int = 0
    waitlist_position: int | None = None


class Attendee(msgspec.Struct, omit_defaults=True):
    """An RSVP in the attendee list; contact and ticket fields only for organizers and staff."""

    rsvp_id: str
    user_id: str
    display_name: str
    avatar_url: str | None
    status: RsvpStatusName
    guest_count: int
    waitlist_position: int | None = None
    email: str | None = None
    checked_in_at: datetime | None = None


class BatchApprove(msgspec.Struct, forbid_unknown_fields=True):
    """RSVPs to approve, in the order given."""

    rsvp_ids: Annotated[list[PublicId], msgspec.Meta(min_length=1, max_length=100)]


class BatchResult(msgspec.Struct):
    """The RSVPs after a batch decision."""

    items: list[Attendee]


class CheckinRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A scanned ticket."""

    ticket_code: TicketCode


class CheckinResult(msgspec.Struct):
    """Who was checked in."""

    attendee: Attendee
    checked_in_at: datetime


class StaffRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A user to add as check-in staff."""

    user_id: PublicId


class StaffMember(msgspec.Struct):
    """A check-in staff member."""

    user_id: str
    role: Literal["checkin_staff"]


class FeedToken(msgspec.Struct):
    """A fresh calendar subscription: the https and webcal URLs carry the secret token."""

    token: str
    url: str
    webcal_url: str


class EventMediaRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An upload slot for the event's media (seed 000 shape); ``size_bytes`` defaults to the type's limit."""

    type: MediaTypeName
    content_type: ContentType
    file_name: FileName
    size_bytes: SizeBytes | None = None


class EventMediaTicket(msgspec.Struct):
    """Where to upload: the presigned PUT (its signature covers ``size_bytes``) and a presigned POST form."""

    upload_url: str
    media_id: str
    expires_at: datetime
    upload: PresignedPostForm
