"""Events and RSVPs: lifecycle, visibility, capacity, waitlists, tickets, calendars and reminders.

Capacity: every verb that moves seats first locks the event row (``SELECT ... FOR UPDATE``),
so seat changes of one event are serial; ``events.seats_taken`` holds the confirmed seats and a
CHECK keeps it within ``capacity`` whatever the code does.

Arrival order: a waitlisted RSVP takes ``events.next_queue_seq`` while holding that lock, and the
lock is held until commit, so ``queue_seq`` order is the order in which RSVP transactions took the
lock, which is their commit order. The waitlist is strict FIFO: when the head does not fit (say it
brings guests), nobody behind it overtakes.

Visibility: drafts are seen only by their editors (the organizer, club admins/owners, platform
admins). ``public`` events by everyone; ``club`` events by the club's active members (and anyone
holding an RSVP or staff role); ``private`` events are unlisted: not in discovery nor on share
pages, but reachable by anyone who has their id.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import unicodedata
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import icalendar
import msgspec
import segno
from sqlalchemy import ColumnElement, Float, and_, delete, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.secrets import hash_secret, new_secret
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat import rooms
from shared.domain.clubs.models import Club, ClubMembership, MemberRole, MembershipStatus
from shared.domain.events.models import (
    AddressVisibility,
    AutoApproveRule,
    CalendarFeed,
    Event,
    EventKind,
    EventStaff,
    EventStatus,
    PaymentProvider,
    ReminderKind,
    ReminderSent,
    Rsvp,
    RsvpChange,
    RsvpStatus,
    Visibility,
)
from shared.domain.events.schemas import (
    Attendee,
    AttendeePreview,
    AttendeesSummary,
    BatchResult,
    CalendarSync,
    CheckinResult,
    CreatedEvent,
    EventCreate,
    EventDetail,
    EventMediaRequest,
    EventMediaTicket,
    EventSummary,
    EventUpdate,
    FeedToken,
    Location,
    LocationIn,
    MyRsvp,
    PublicEvent,
    RsvpRequest,
    RsvpResult,
    StaffMember,
    StatusChange,
    Ticketing,
    TicketingIn,
)
from shared.domain.media.formats import SIZE_LIMITS
from shared.domain.media.models import MediaType, Purpose
from shared.domain.media.schemas import UploadRequest
from shared.domain.media.services import MediaService, TargetPolicy
from shared.domain.notifications.schemas import Payload
from shared.domain.notifications.services import notify
from shared.domain.payments.boosts import boost_rank, boosted_event_filter
from shared.domain.payments.ticket_models import LIVE_PAYMENT_STATUSES, TicketPayment
from shared.domain.payments.tiers import tier_satisfies
from shared.domain.social.models import Friendship, Vouch
from shared.domain.users.models import Role, User
from shared.domain.users.services import normalize_interests
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

PREVIEW_SIZE = 5
# Two decimals of a degree: about 1.1 km of latitude, the precision of a private address's pin.
ROUNDED_DECIMALS = 2
FEED_TOKEN_PREFIX = "calfeed"
REMINDER_LEADS = {ReminderKind.DAY: timedelta(hours=24), ReminderKind.HOUR: timedelta(hours=1)}
MAX_RADIUS_KM = 500.0
_CLUB_EDITOR_ROLES = (MemberRole.OWNER.value, MemberRole.ADMIN.value)
_SEAT_HOLDER = RsvpStatus.CONFIRMED.value
# Statuses whose seats count in ``events.seats_taken`` (held and offered: paid seats awaiting payment).
_SEAT_TAKERS = (RsvpStatus.CONFIRMED.value, RsvpStatus.HELD.value, RsvpStatus.OFFERED.value)


def sells_by_card(event: Event) -> bool:
    """Whether seats of this event are bought by card (held while paying, offered to the waitlist)."""
    return event.ticket_type == "paid" and event.payment_provider == PaymentProvider.STRIPE


class _StartKey(msgspec.Struct, frozen=True):
    """Keyset position in a list sorted by start time."""

    start_time: datetime
    id: uuid.UUID
    # Boosted events lead the list; a cursor inside that leading run still has the rest to go.
    boosted: bool = False


class _DistanceKey(msgspec.Struct, frozen=True):
    """Keyset position in a list sorted by distance."""

    distance_m: float
    id: uuid.UUID


class _IdKey(msgspec.Struct, frozen=True):
    """Keyset position: the UUIDv7 of the last row seen."""

    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Viewer:
    """What one caller is to one event."""

    editor: bool
    staff: bool
    member: bool
    rsvp: Rsvp | None
    premium_tier: str | None = None

    @property
    def confirmed(self) -> bool:
        """Whether the caller holds confirmed seats."""
        return self.rsvp is not None and self.rsvp.status == RsvpStatus.CONFIRMED

    def locked_out(self, event: Event) -> bool:
        """Whether the event needs a premium tier this caller lacks (editors are never locked out)."""
        return not self.editor and not tier_satisfies(self.premium_tier, event.required_tier)

    @property
    def sees_address(self) -> bool:
        """Whether the exact address is shown to this caller when it is attendees-only."""
        return self.editor or self.staff or self.confirmed


@dataclass(frozen=True, slots=True)
class EventFilters:
    """Discovery query parameters, parsed."""

    city: str | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    tag: str | None = None
    club_id: uuid.UUID | None = None
    kind: str | None = None
    q: str | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    sort: str = "start_time"
    premium_only: bool = False


def slugify(title: str) -> str:
    """A URL slug from a title: ASCII, lower case, hyphen-separated."""
    ascii_name = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return slug or "event"


def parse_near(raw: str) -> tuple[float, float]:
    """``lat,lng`` → floats; 422 on anything else."""
    parts = raw.split(",")
    try:
        lat, lng = (float(p) for p in parts) if len(parts) == 2 else (float("nan"), 0.0)
    except ValueError:
        lat, lng = float("nan"), 0.0
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise InvalidInput(errors=[FieldError("near", "expected lat,lng")])
    return lat, lng


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """``minLng,minLat,maxLng,maxLat`` → floats; 422 on anything else."""
    parts = raw.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InvalidInput(errors=[FieldError("bbox", "expected minLng,minLat,maxLng,maxLat")])
    min_lng, min_lat, max_lng, max_lat = values
    if not (-180 <= min_lng <= max_lng <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise InvalidInput(errors=[FieldError("bbox", "expected minLng,minLat,maxLng,maxLat within range")])
    return min_lng, min_lat, max_lng, max_lat


class EventService:
    """Every event verb; each is one transaction."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        *,
        media: MediaService,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock
        self._media = media
        media.register_target(Purpose.EVENT, self._media_target_check)

    # ---- lifecycle ---------------------------------------------------------------------

    async def create_event(
        self, actor: AccessClaims, data: EventCreate, club_public_id: uuid.UUID | None
    ) -> CreatedEvent:
        """Create a draft; organizers (role) or admins/owners of the given club only."""
        errors = _validate_times(data.start_time, data.end_time, data.timezone, self._clock())
        errors += _validate_ticketing(data.ticketing)
        if data.visibility == "club" and club_public_id is None:
            errors.append(FieldError("club_id", "club events need a club"))
        errors += _validate_auto_approve(data.auto_approve, has_club=club_public_id is not None)
        if errors:
            raise InvalidInput(errors=errors, code=_error_code(errors))
        now = self._clock()
        async with self._sessions.begin() as session:
            if club_public_id is not None:
                club = await session.get(Club, club_public_id)
                membership = await _club_membership(session, club_public_id, actor.user_id)
                if club is None or club.deleted_at is not None:
                    raise NotFound("no such club", code="club_not_found")
                if not _is_club_editor(membership) and Role.ADMIN.value not in actor.roles:
                    raise PermissionDenied("only the club's admins can create its events", code="not_club_admin")
            elif not ({Role.ORGANIZER.value, Role.ADMIN.value} & set(actor.roles)):
                raise PermissionDenied("only organizers can create events", code="organizer_required")
            event = Event(
                id=ids.uuid7(),
                organizer_id=actor.user_id,
                club_id=club_public_id,
                slug=f"{slugify(data.title)}-{secrets.token_hex(4)}",
                title=data.title.strip(),
                description=_blank_to_none(data.description),
                start_time=data.start_time,
                end_time=data.end_time,
                timezone=data.timezone,
                address_visibility=data.address_visibility,
                capacity=data.capacity,
                seats_taken=0,
                next_queue_seq=1,
                tags=normalize_interests(data.tags),
                visibility=data.visibility,
                kind=data.kind,
                skill_level=data.skill_level,
                requires_approval=data.requires_approval,
                auto_approve=list(dict.fromkeys(data.auto_approve)),
                required_tier=data.required_tier,
                status=EventStatus.DRAFT.value,
                sequence=0,
                created_at=now,
                updated_at=now,
            )
            _apply_location(event, data.location)
            _apply_ticketing(event, data.ticketing)
            session.add(event)
            await session.flush()
            await bus.record(session, bus.EventCreated(event_id=event.id, organizer_id=actor.user_id))
        return CreatedEvent(id=ids.encode(ids.Prefix.EVENT, event.id), status="draft", created_at=now)

    async def update_event(self, actor: AccessClaims, event_id: uuid.UUID, patch: EventUpdate) -> EventDetail:
        """Change an event (organizer or club admin); a capacity increase promotes the waitlist."""
        async with self._sessions.begin() as session:
            event = await _lock_event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            _require_editor(viewer)
            if event.status in (EventStatus.CANCELLED, EventStatus.COMPLETED):
                raise Conflict("this event is over; it can no longer change", code="event_closed")
            start = event.start_time if patch.start_time is msgspec.UNSET else patch.start_time
            end = event.end_time if patch.end_time is msgspec.UNSET else patch.end_time
            tz = event.timezone if patch.timezone is msgspec.UNSET else patch.timezone
            errors: list[FieldError] = []
            if any(v is not msgspec.UNSET for v in (patch.start_time, patch.end_time, patch.timezone)):
                errors += _validate_times(start, end, tz, self._clock())
            if patch.ticketing is not msgspec.UNSET:
                errors += _validate_ticketing(patch.ticketing)
            if patch.visibility == "club" and event.club_id is None:
                errors.append(FieldError("visibility", "only club events can be club-only"))
            if patch.auto_approve is not msgspec.UNSET:
                errors += _validate_auto_approve(patch.auto_approve, has_club=event.club_id is not None)
            if errors:
                raise InvalidInput(errors=errors, code=_error_code(errors))
            if (
                patch.capacity is not msgspec.UNSET
                and patch.capacity is not None
                and patch.capacity < event.seats_taken
            ):
                raise Conflict(
                    f"{event.seats_taken} seats are already confirmed; cancel RSVPs before lowering capacity",
                    code="capacity_below_taken",
                )
            before = _schedule_and_place(event)
            for field in ("title", "start_time", "end_time", "timezone", "address_visibility", "capacity"):
                if (value := getattr(patch, field)) is not msgspec.UNSET:
                    setattr(event, field, value.strip() if field == "title" else value)
            for field in ("visibility", "skill_level", "requires_approval", "required_tier"):
                if (value := getattr(patch, field)) is not msgspec.UNSET:
                    setattr(event, field, value)
            if patch.auto_approve is not msgspec.UNSET:
                event.auto_approve = list(dict.fromkeys(patch.auto_approve))
            if patch.description is not msgspec.UNSET:
                event.description = _blank_to_none(patch.description)
            if patch.tags is not msgspec.UNSET:
                event.tags = normalize_interests(patch.tags)
            if patch.location is not msgspec.UNSET:
                _apply_location(event, patch.location)
            if patch.ticketing is not msgspec.UNSET:
                await _check_ticketing_change(session, event, patch.ticketing)
                _apply_ticketing(event, patch.ticketing)
            event.sequence += 1
            event.updated_at = self._clock()
            await session.flush()
            changes = _changed_facets(before, _schedule_and_place(event))
            if changes and event.status == EventStatus.PUBLISHED:
                await self._record_updated(session, event, changes)
            await self._promote(session, event, actor.user_id)
            await session.refresh(event)
            return await self._detail(session, event, viewer, actor.user_id)

    async def publish(self, actor: AccessClaims, event_id: uuid.UUID) -> StatusChange:
        """draft → published."""
        async with self._sessions.begin() as session:
            event = await self._editable(session, event_id, actor)
            if event.status != EventStatus.DRAFT:
                raise Conflict(f"a {event.status} event cannot be published", code="invalid_transition")
            if event.start_time <= self._clock():
                raise Conflict("this event has already started", code="event_closed")
            event.status = EventStatus.PUBLISHED.value
            event.published_at = self._clock()
            event.sequence += 1
            await bus.record(session, bus.EventPublished(event_id=event.id, organizer_id=event.organizer_id))
            await rooms.open_event_room(session, event.id, event.organizer_id, event.title)
        return StatusChange(status="published")

    async def cancel(self, actor: AccessClaims, event_id: uuid.UUID) -> StatusChange:
        """draft | published → cancelled; every attendee is notified."""
        async with self._sessions.begin() as session:
            event = await self._editable(session, event_id, actor)
            if event.status not in (EventStatus.DRAFT, EventStatus.PUBLISHED):
                raise Conflict(f"a {event.status} event cannot be cancelled", code="invalid_transition")
            event.status = EventStatus.CANCELLED.value
            event.sequence += 1
            event.updated_at = self._clock()
            notified = list(
                await session.scalars(
                    select(Rsvp.user_id)
                    .where(
                        Rsvp.event_id == event.id,
                        Rsvp.status.in_(
                            [
                                RsvpStatus.CONFIRMED,
                                RsvpStatus.HELD,
                                RsvpStatus.OFFERED,
                                RsvpStatus.WAITLISTED,
                                RsvpStatus.PENDING_APPROVAL,
                                RsvpStatus.MAYBE,
                            ]
                        ),
                    )
                    .order_by(Rsvp.id)
                )
            )
            await bus.record(session, bus.EventCancelled(event_id=event.id, attendee_ids=notified))
            # Subscribers of event.updated (calendars, chat) see the status change; the attendees are
            # told once, by the event_cancelled notification above.
            await self._record_updated(session, event, ["status"])
            await rooms.close_event_room(session, event.id, actor.user_id)
        return StatusChange(status="cancelled")

    async def complete(self, actor: AccessClaims, event_id: uuid.UUID) -> StatusChange:
        """published → completed, once the event has started."""
        async with self._sessions.begin() as session:
            event = await self._editable(session, event_id, actor)
            if event.status != EventStatus.PUBLISHED:
                raise Conflict(f"a {event.status} event cannot be completed", code="invalid_transition")
            if event.start_time > self._clock():
                raise Conflict("an event can only be completed once it has started", code="not_started")
            event.status = EventStatus.COMPLETED.value
            event.sequence += 1
            event.updated_at = self._clock()
            await session.flush()
            await self._record_updated(session, event, ["status"])
        return StatusChange(status="completed")

    async def get_event(self, actor: AccessClaims, event_id: uuid.UUID) -> EventDetail:
        """An event as the caller may see it; 404 when not visible."""
        async with self._sessions() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            return await self._detail(session, event, viewer, actor.user_id)

    async def public_event(self, slug: str) -> PublicEvent:
        """The share page of a public, non-draft event; 404 for anything else."""
        async with self._sessions() as session:
            event = await session.scalar(select(Event).where(Event.slug == slug))
            if event is None or event.visibility != Visibility.PUBLIC or event.status == EventStatus.DRAFT:
                raise NotFound("no such event", code="event_not_found")
            organizer = await session.scalar(select(User.display_name).where(User.id == event.organizer_id))
        return PublicEvent(
            title=event.title,
            description=event.description,
            start_time=event.start_time,
            end_time=event.end_time,
            timezone=event.timezone,
            location=_location(event, precise=event.address_visibility == AddressVisibility.PUBLIC),
            kind=event.kind,  # type: ignore[arg-type]
            status=event.status,  # type: ignore[arg-type]
            attendee_count=event.seats_taken,
            organizer_name=organizer or "",
            share_url=self.share_url(event),
        )

    async def list_events(
        self, actor: AccessClaims, filters: EventFilters, cursor: str | None, limit: int | None
    ) -> Page[EventSummary]:
        """Published events the caller may see, by start time or distance, keyset-paginated."""
        size = clamp_limit(limit)
        now = self._clock()
        is_member = exists().where(
            ClubMembership.club_id == Event.club_id,
            ClubMembership.user_id == actor.user_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        )
        conditions: list[ColumnElement[bool]] = [
            Event.status == EventStatus.PUBLISHED.value,
            or_(
                Event.visibility == Visibility.PUBLIC.value, and_(Event.visibility == Visibility.CLUB.value, is_member)
            ),
            Event.start_time >= (filters.start_from or now),
        ]
        if filters.start_to is not None:
            conditions.append(Event.start_time < filters.start_to)
        if filters.city and filters.city.strip():
            conditions.append(func.lower(Event.city) == filters.city.strip().lower())
        if filters.tag and (tags := normalize_interests([filters.tag])):
            conditions.append(Event.tags.contains(tags))
        if filters.club_id is not None:
            conditions.append(Event.club_id == filters.club_id)
        if filters.premium_only:
            conditions.append(Event.required_tier.is_not(None))
        if filters.kind is not None:
            if filters.kind not in {k.value for k in EventKind}:
                raise InvalidInput(errors=[FieldError("kind", "must be event or activity")])
            conditions.append(Event.kind == filters.kind)
        if filters.q and filters.q.strip():
            pattern = f"%{_escape_like(filters.q.strip())}%"
            conditions.append(
                or_(Event.title.ilike(pattern, escape="\\"), Event.description.ilike(pattern, escape="\\"))
            )
        if filters.bbox is not None:
            conditions.append(bbox_condition(*filters.bbox))
        distance: ColumnElement[float] | None = None
        if filters.near is not None:
            lat, lng = filters.near
            distance = distance_m(lat, lng)
            if filters.radius_km is not None:
                if not 0 < filters.radius_km <= MAX_RADIUS_KM:
                    raise InvalidInput(errors=[FieldError("radius_km", f"must be in (0, {MAX_RADIUS_KM:g}]")])
                conditions.append(radius_condition(lat, lng, filters.radius_km * 1000))
        elif filters.radius_km is not None:
            raise InvalidInput(errors=[FieldError("near", "radius_km needs near=lat,lng")])
        if filters.sort not in ("start_time", "distance"):
            raise InvalidInput(errors=[FieldError("sort", "must be start_time or distance")])
        if filters.sort == "distance" and distance is None:
            raise InvalidInput(errors=[FieldError("near", "sorting by distance needs near=lat,lng")])
        columns = [Event, distance.label("distance_m") if distance is not None else literal(None, Float).label("d")]
        query = select(*columns).where(*conditions)
        if filters.sort == "distance":
            assert distance is not None
            if cursor is not None:
                key = decode_cursor(cursor, _DistanceKey)
                query = query.where(or_(distance > key.distance_m, and_(distance == key.distance_m, Event.id > key.id)))
            query = query.order_by(distance, Event.id)
        else:
            # Live boosts come first (``search`` ones when a query is given, else ``discover_feed``).
            boosted = boosted_event_filter(now, "search" if filters.q and filters.q.strip() else "discover_feed")
            columns.append(boosted.label("boosted"))
            query = select(*columns).where(*conditions)
            if cursor is not None:
                skey = decode_cursor(cursor, _StartKey)
                later = or_(
                    Event.start_time > skey.start_time,
                    and_(Event.start_time == skey.start_time, Event.id > skey.id),
                )
                query = query.where(or_(~boosted, later) if skey.boosted else and_(~boosted, later))
            query = query.order_by(boost_rank(boosted), Event.start_time, Event.id)
        async with self._sessions() as session:
            rows = [
                (row[0], row[1], bool(row[2]) if len(row) > 2 else False)
                for row in (await session.execute(query.limit(size + 1))).all()
            ]
            tier = await session.scalar(select(User.premium_tier).where(User.id == actor.user_id))

        def key_of(row: tuple[Event, float | None, bool]) -> msgspec.Struct:
            if filters.sort == "distance":
                return _DistanceKey(distance_m=float(row[1] or 0.0), id=row[0].id)
            return _StartKey(start_time=row[0].start_time, id=row[0].id, boosted=bool(row[2]))

        page = make_page(rows, size, key_of)
        items = [self._summary(e, d) for e, d, _ in page.items]
        for item, (event, _, _) in zip(items, page.items, strict=True):
            # Organizers see their own premium events unlocked, as on the detail read.
            item.locked = event.organizer_id != actor.user_id and not tier_satisfies(tier, event.required_tier)
        return Page(items=items, next_cursor=page.next_cursor)

    # ---- RSVPs -------------------------------------------------------------------------

    async def rsvp(self, actor: AccessClaims, event_id: uuid.UUID, data: RsvpRequest) -> RsvpResult:
        """Answer an event: confirmed while seats remain, else waitlisted; approval-gated → pending."""
        async with self._sessions.begin() as session:
            event = await _lock_event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            if event.status != EventStatus.PUBLISHED or event.start_time <= self._clock():
                raise Conflict("this event is not taking RSVPs", code="event_closed")
            rsvp = viewer.rsvp
            if rsvp is not None and rsvp.status == RsvpStatus.REJECTED:
                raise PermissionDenied("the organizer declined your RSVP", code="rsvp_rejected")
            # Stepping back (not_going) stays open to everyone, e.g. after a subscription lapsed.
            if data.status != "not_going" and viewer.locked_out(event):
                raise PermissionDenied(
                    f"this event requires a {event.required_tier} subscription", code="premium_required"
                )
            if data.status == "going":
                rsvp = await self._going(session, event, rsvp, actor, data.guest_count, viewer.editor)
            else:
                target = RsvpStatus.MAYBE if data.status == "maybe" else RsvpStatus.CANCELLED
                rsvp = await self._step_back(session, event, rsvp, actor.user_id, target, data.guest_count)
            position = await _waitlist_position(session, rsvp)
            synced = await session.scalar(select(exists().where(CalendarFeed.user_id == actor.user_id)))
        state: str = "synced" if synced else "not_connected"
        return RsvpResult(
            rsvp_id=ids.encode(ids.Prefix.RSVP, rsvp.id),
            status=rsvp.status,  # type: ignore[arg-type]
            guest_count=rsvp.guest_count,
            waitlist_position=position,
            calendar_sync=CalendarSync(google=state, apple=state),  # type: ignore[arg-type]
        )

    async def _going(
        self, session: AsyncSession, event: Event, rsvp: Rsvp | None, actor: AccessClaims, guests: int, editor: bool
    ) -> Rsvp:
        user_id = actor.user_id
        if rsvp is not None and rsvp.status == RsvpStatus.CONFIRMED:
            delta = guests - rsvp.guest_count
            if delta > 0 and event.capacity is not None and event.seats_taken + delta > event.capacity:
                raise Conflict("not enough seats left for more guests", code="event_full")
            rsvp.guest_count = guests
            event.seats_taken += delta
            await session.flush()
            if delta < 0:
                await self._promote(session, event, user_id)
            return rsvp
        if rsvp is not None and rsvp.status in (RsvpStatus.WAITLISTED, RsvpStatus.PENDING_APPROVAL):
            rsvp.guest_count = guests
            await session.flush()
            if rsvp.status == RsvpStatus.WAITLISTED:
                await self._promote(session, event, user_id)
            return rsvp
        if rsvp is None:
            rsvp = Rsvp(id=ids.uuid7(), event_id=event.id, user_id=user_id, guest_count=guests)
            previous = None
        else:
            previous = rsvp.status
            rsvp.guest_count = guests
        reason = "rsvp"
        if event.requires_approval and not editor and await _auto_approved(session, event, user_id):
            reason = "auto_approved"
        elif event.requires_approval and not editor:
            rsvp.status = RsvpStatus.PENDING_APPROVAL.value
            rsvp.queue_seq = None
            session.add(rsvp)
            await session.flush()
            await _history(session, rsvp, previous, "rsvp", user_id)
            return rsvp
        await self._admit(session, event, rsvp, previous, reason, user_id)
        return rsvp

    async def _admit(
        self, session: AsyncSession, event: Event, rsvp: Rsvp, previous: str | None, reason: str, actor_id: uuid.UUID
    ) -> None:
        """Confirm ``rsvp`` if it fits and nobody is waiting ahead of it, else put it at the end of the waitlist."""
        waiting = await session.scalar(
            select(exists().where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.WAITLISTED.value))
        )
        if not waiting and _fits(event, rsvp.seats):
            session.add(rsvp)
            if sells_by_card(event):
                # An approved RSVP to a card-paid event gets the seats to pay for, not a free ticket.
                await self._offer(session, event, rsvp, actor_id, previous)
                return
            await self._confirm(session, event, rsvp, previous, reason, actor_id)
            return
        rsvp.status = RsvpStatus.WAITLISTED.value
        rsvp.queue_seq = event.next_queue_seq
        rsvp.queued_at = await session.scalar(select(func.clock_timestamp()))
        session.add(rsvp)
        event.next_queue_seq += 1
        await session.flush()
        await _history(session, rsvp, previous, reason, actor_id)

    async def _confirm(
        self, session: AsyncSession, event: Event, rsvp: Rsvp, previous: str | None, reason: str, actor_id: uuid.UUID
    ) -> None:
        event.seats_taken += rsvp.seats
        rsvp.status = RsvpStatus.CONFIRMED.value
        rsvp.ticket_code = secrets.token_urlsafe(24)
        rsvp.updated_at = self._clock()
        await session.flush()
        await _history(session, rsvp, previous, reason, actor_id)
        events: list[bus.Event] = [
            bus.RsvpConfirmed(event_id=event.id, rsvp_id=rsvp.id, user_id=rsvp.user_id, reason=reason)
        ]
        if reason == "promoted":
            events.insert(0, bus.RsvpPromoted(event_id=event.id, rsvp_id=rsvp.id, user_id=rsvp.user_id))
        await bus.record(session, *events)
        await rooms.add_event_member(session, event.id, rsvp.user_id)

    async def _step_back(
        self,
        session: AsyncSession,
        event: Event,
        rsvp: Rsvp | None,
        user_id: uuid.UUID,
        target: RsvpStatus,
        guests: int,
    ) -> Rsvp:
        """``maybe`` or ``not_going``: release any seats held and promote the waitlist."""
        if rsvp is None:
            rsvp = Rsvp(id=ids.uuid7(), event_id=event.id, user_id=user_id, status=target.value, guest_count=guests)
            session.add(rsvp)
            await session.flush()
            await _history(session, rsvp, None, "rsvp", user_id)
            return rsvp
        previous = rsvp.status
        await self._release(session, event, rsvp, target, "rsvp", user_id)
        rsvp.guest_count = guests
        await session.flush()
        # Freed seats (confirmed, held or offered) let the queue move; so does a waitlisted head that
        # did not fit and blocked everyone behind it (strict FIFO).
        if previous in (*_SEAT_TAKERS, RsvpStatus.WAITLISTED.value):
            await self._promote(session, event, user_id)
        return rsvp

    async def _release(
        self, session: AsyncSession, event: Event, rsvp: Rsvp, target: RsvpStatus, reason: str, actor_id: uuid.UUID
    ) -> None:
        previous = rsvp.status
        if previous in _SEAT_TAKERS:
            event.seats_taken -= rsvp.seats
            await rooms.remove_event_member(session, event.id, rsvp.user_id)
        rsvp.status = target.value
        rsvp.queue_seq = None
        rsvp.ticket_code = None
        rsvp.hold_expires_at = None
        rsvp.updated_at = self._clock()
        await session.flush()
        await _history(session, rsvp, previous, reason, actor_id)

    async def _promote(self, session: AsyncSession, event: Event, actor_id: uuid.UUID) -> None:
        """Confirm waitlisted RSVPs in queue order while the head fits (strict FIFO)."""
        if event.status != EventStatus.PUBLISHED:
            return
        while True:
            head = await session.scalar(
                select(Rsvp)
                .where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.WAITLISTED.value)
                .order_by(Rsvp.queue_seq)
                .limit(1)
            )
            if head is None or not _fits(event, head.seats):
                return
            head.queue_seq = None
            if sells_by_card(event):
                await self._offer(session, event, head, actor_id)
                continue
            await self._confirm(session, event, head, RsvpStatus.WAITLISTED.value, "promoted", actor_id)

    async def release_user(self, session: AsyncSession, user_id: uuid.UUID) -> int:
        """Cancel every open RSVP of ``user_id`` in the caller's transaction (account deletion).

        Each event is locked as an RSVP would lock it, in id order so two releases cannot deadlock;
        freed seats promote the waitlist. RSVPs of past, cancelled or completed events stay as a record.
        Also drops the user's calendar feed. Returns how many RSVPs were cancelled.
        """
        open_statuses = [
            RsvpStatus.CONFIRMED,
            RsvpStatus.HELD,
            RsvpStatus.OFFERED,
            RsvpStatus.WAITLISTED,
            RsvpStatus.PENDING_APPROVAL,
            RsvpStatus.MAYBE,
        ]
        event_ids = list(
            await session.scalars(
                select(Rsvp.event_id)
                .join(Event, Event.id == Rsvp.event_id)
                .where(
                    Rsvp.user_id == user_id,
                    Rsvp.status.in_([s.value for s in open_statuses]),
                    Event.status.in_([EventStatus.DRAFT.value, EventStatus.PUBLISHED.value]),
                    Event.end_time > self._clock(),
                )
                .order_by(Rsvp.event_id)
            )
        )
        released = 0
        for event_id in event_ids:
            event = await _lock_event(session, event_id)
            rsvp = await session.scalar(
                select(Rsvp)
                .where(Rsvp.event_id == event_id, Rsvp.user_id == user_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if rsvp is None or rsvp.status not in open_statuses:
                continue
            previous = rsvp.status
            await self._release(session, event, rsvp, RsvpStatus.CANCELLED, "account_deleted", user_id)
            if previous in (*_SEAT_TAKERS, RsvpStatus.WAITLISTED.value):
                await self._promote(session, event, user_id)
            released += 1
        await session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user_id))
        return released

    async def _offer(
        self,
        session: AsyncSession,
        event: Event,
        rsvp: Rsvp,
        actor_id: uuid.UUID,
        previous: str | None = RsvpStatus.WAITLISTED.value,
    ) -> None:
        """Card-paid events: the freed seats go to the waitlist head for a limited time, to pay for."""
        now = self._clock()
        event.seats_taken += rsvp.seats
        rsvp.status = RsvpStatus.OFFERED.value
        # The offer is for the price of the moment; a later price change does not reach it.
        rsvp.seat_price_cents = event.price_cents
        rsvp.hold_expires_at = now + timedelta(seconds=self._settings.ticket_offer_seconds)
        rsvp.updated_at = now
        await session.flush()
        await _history(session, rsvp, previous, "offered", actor_id)
        payload: Payload = {
            "event_id": ids.encode(ids.Prefix.EVENT, event.id),
            "event_title": event.title,
            "rsvp_id": ids.encode(ids.Prefix.RSVP, rsvp.id),
            "expires_at": rsvp.hold_expires_at.isoformat(),
        }
        await notify(session, rsvp.user_id, "ticket_offered", payload, dedupe_key=f"ticket_offered:{rsvp.id}:{now}")

    # ---- hooks for paid tickets (shared/domain/payments/tickets.py) ----------------------------
    # Each runs inside the caller's transaction, after the caller locked the event with lock_event.

    async def lock_event(self, session: AsyncSession, event_id: uuid.UUID) -> Event:
        """The event row, locked for a seat change (404 when missing)."""
        return await _lock_event(session, event_id)

    async def rsvp_viewer(self, session: AsyncSession, event: Event, actor: AccessClaims) -> Viewer:
        """What the caller is to ``event``; 404 when they may not see it."""
        viewer = await self._viewer(session, event, actor)
        self._require_visible(event, viewer)
        return viewer

    async def hold_seats(
        self, session: AsyncSession, event: Event, rsvp: Rsvp, previous: str | None, expires_at: datetime
    ) -> bool:
        """Hold ``rsvp``'s seats while it pays, or queue it (``False``) when it does not fit or others wait."""
        waiting = await session.scalar(
            select(exists().where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.WAITLISTED.value))
        )
        session.add(rsvp)
        if waiting or not _fits(event, rsvp.seats):
            rsvp.status = RsvpStatus.WAITLISTED.value
            rsvp.queue_seq = event.next_queue_seq
            rsvp.queued_at = await session.scalar(select(func.clock_timestamp()))
            event.next_queue_seq += 1
            await session.flush()
            await _history(session, rsvp, previous, "rsvp", rsvp.user_id)
            return False
        event.seats_taken += rsvp.seats
        rsvp.status = RsvpStatus.HELD.value
        rsvp.seat_price_cents = event.price_cents
        rsvp.queue_seq = None
        rsvp.hold_expires_at = expires_at
        rsvp.updated_at = self._clock()
        await session.flush()
        await _history(session, rsvp, previous, "held", rsvp.user_id)
        return True

    async def confirm_held(self, session: AsyncSession, event: Event, rsvp: Rsvp, reason: str) -> None:
        """A held or offered RSVP was paid: it keeps its seats and gets its ticket."""
        previous = rsvp.status
        rsvp.status = RsvpStatus.CONFIRMED.value
        rsvp.hold_expires_at = None
        rsvp.ticket_code = secrets.token_urlsafe(24)
        rsvp.updated_at = self._clock()
        await session.flush()
        await _history(session, rsvp, previous, reason, rsvp.user_id)
        await bus.record(
            session, bus.RsvpConfirmed(event_id=event.id, rsvp_id=rsvp.id, user_id=rsvp.user_id, reason=reason)
        )

    async def release_seats(
        self, session: AsyncSession, event: Event, rsvp: Rsvp, reason: str, actor_id: uuid.UUID
    ) -> None:
        """Cancel ``rsvp`` (giving back any seats it took) and promote the waitlist."""
        await self._release(session, event, rsvp, RsvpStatus.CANCELLED, reason, actor_id)
        await self._promote(session, event, actor_id)

    async def decide(
        self, actor: AccessClaims, event_id: uuid.UUID, rsvp_ids: Sequence[uuid.UUID], approve: bool
    ) -> BatchResult:
        """Approve (pending → confirmed or waitlisted, in the order given) or reject RSVPs; editors only."""
        async with self._sessions.begin() as session:
            event = await self._editable(session, event_id, actor)
            if event.status != EventStatus.PUBLISHED:
                raise Conflict("this event is not taking RSVPs", code="event_closed")
            found = {
                r.id: r
                for r in await session.scalars(
                    select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.id.in_(list(rsvp_ids))).with_for_update()
                )
            }
            missing = [i for i in rsvp_ids if i not in found]
            if missing:
                raise NotFound(f"no such RSVP: {ids.encode(ids.Prefix.RSVP, missing[0])}", code="rsvp_not_found")
            ordered = [found[i] for i in dict.fromkeys(rsvp_ids)]
            freed = False
            for rsvp in ordered:
                if approve:
                    if rsvp.status != RsvpStatus.PENDING_APPROVAL:
                        raise Conflict(f"this RSVP is {rsvp.status}, not pending approval", code="not_pending")
                    await self._admit(session, event, rsvp, rsvp.status, "approved", actor.user_id)
                else:
                    if rsvp.status in (RsvpStatus.REJECTED, RsvpStatus.CANCELLED, RsvpStatus.MAYBE):
                        raise Conflict(f"this RSVP is {rsvp.status}", code="not_rejectable")
                    # Removing a waitlisted head that did not fit unblocks the queue as freeing seats does.
                    freed = freed or rsvp.status in (*_SEAT_TAKERS, RsvpStatus.WAITLISTED.value)
                    await self._release(session, event, rsvp, RsvpStatus.REJECTED, "rejected", actor.user_id)
            if freed:
                await self._promote(session, event, actor.user_id)
            users = await _users(session, [r.user_id for r in ordered])
            items = [await _attendee(session, r, users[r.user_id], contact=True) for r in ordered]
        return BatchResult(items=items)

    async def list_attendees(
        self, actor: AccessClaims, event_id: uuid.UUID, status: str | None, cursor: str | None, limit: int | None
    ) -> Page[Attendee]:
        """Organizers and staff: every RSVP with contact, filterable; others: confirmed attendees only."""
        size = clamp_limit(limit)
        if status is not None and status not in {s.value for s in RsvpStatus}:
            raise InvalidInput(
                errors=[FieldError("status", f"must be one of {', '.join(s.value for s in RsvpStatus)}")]
            )
        async with self._sessions() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            privileged = viewer.editor or viewer.staff
            if not privileged:
                status = RsvpStatus.CONFIRMED.value
            conditions: list[ColumnElement[bool]] = [Rsvp.event_id == event.id]
            if status is not None:
                conditions.append(Rsvp.status == status)
            if cursor is not None:
                conditions.append(Rsvp.id > decode_cursor(cursor, _IdKey).id)
            rows = list(await session.scalars(select(Rsvp).where(*conditions).order_by(Rsvp.id).limit(size + 1)))
            page = make_page(rows, size, lambda r: _IdKey(id=r.id))
            users = await _users(session, [r.user_id for r in page.items])
            items = [await _attendee(session, r, users[r.user_id], contact=privileged) for r in page.items]
        return Page(items=items, next_cursor=page.next_cursor)

    async def attendees_csv(self, actor: AccessClaims, event_id: uuid.UUID) -> str:
        """Every RSVP of the event as CSV; organizers only."""
        async with self._sessions() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            _require_editor(viewer)
            rows = (
                await session.execute(
                    select(Rsvp, User)
                    .join(User, User.id == Rsvp.user_id)
                    .where(Rsvp.event_id == event.id)
                    .order_by(Rsvp.id)
                )
            ).all()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rsvp_id", "user_id", "display_name", "email", "status", "guest_count", "checked_in_at"])
        for rsvp, user in rows:
            writer.writerow(
                [
                    ids.encode(ids.Prefix.RSVP, rsvp.id),
                    ids.encode(ids.Prefix.USER, user.id),
                    _csv_safe(user.display_name),
                    user.email,
                    rsvp.status,
                    rsvp.guest_count,
                    rsvp.checked_in_at.isoformat() if rsvp.checked_in_at else "",
                ]
            )
        return out.getvalue()

    # ---- tickets and check-in ---------------------------------------------------------------

    async def add_staff(self, actor: AccessClaims, event_id: uuid.UUID, user_id: uuid.UUID) -> StaffMember:
        """Let ``user_id`` check people in at this event; organizers only; idempotent."""
        async with self._sessions.begin() as session:
            event = await self._editable(session, event_id, actor)
            if await session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("no such user", code="user_not_found")
            await session.execute(
                insert(EventStaff)
                .values(event_id=event.id, user_id=user_id, added_by=actor.user_id)
                .on_conflict_do_nothing()
            )
        return StaffMember(user_id=ids.encode(ids.Prefix.USER, user_id), role="checkin_staff")

    async def checkin(self, actor: AccessClaims, event_id: uuid.UUID, code: str) -> CheckinResult:
        """Spend a ticket once; organizers and check-in staff only."""
        async with self._sessions.begin() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
            if not (viewer.editor or viewer.staff):
                raise PermissionDenied("only organizers and check-in staff can check people in", code="not_staff")
            rsvp = await session.scalar(
                select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.ticket_code == code).with_for_update()
            )
            if rsvp is None:
                raise NotFound("no such ticket for this event", code="ticket_not_found")
            if rsvp.checked_in_at is not None:
                raise Conflict("this ticket was already used", code="already_checked_in")
            now = self._clock()
            rsvp.checked_in_at = now
            rsvp.checked_in_by = actor.user_id
            await session.flush()
            await bus.record(session, bus.EventCheckedIn(event_id=event.id, rsvp_id=rsvp.id, user_id=rsvp.user_id))
            users = await _users(session, [rsvp.user_id])
            attendee = await _attendee(session, rsvp, users[rsvp.user_id], contact=True)
        return CheckinResult(attendee=attendee, checked_in_at=now)

    async def ticket_qr_svg(self, actor: AccessClaims, event_id: uuid.UUID) -> str:
        """The caller's ticket as an SVG QR code; 404 without a confirmed RSVP."""
        async with self._sessions() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
        if viewer.rsvp is None or viewer.rsvp.ticket_code is None:
            raise NotFound("you have no ticket for this event", code="ticket_not_found")
        out = io.BytesIO()
        segno.make(viewer.rsvp.ticket_code, error="m").save(out, kind="svg", scale=4)
        return out.getvalue().decode()

    # ---- calendars -------------------------------------------------------------------------

    async def event_ics(self, actor: AccessClaims, event_id: uuid.UUID) -> str:
        """One VEVENT for the event (RFC 5545)."""
        async with self._sessions() as session:
            event = await _event(session, event_id)
            viewer = await self._viewer(session, event, actor)
            self._require_visible(event, viewer)
        calendar = _calendar()
        calendar.add_component(self._vevent(event, precise=_precise(event, viewer)))
        return str(calendar.to_ical().decode())

    async def rotate_feed_token(self, actor: AccessClaims) -> FeedToken:
        """A new subscription token; the previous one stops working at once."""
        raw, digest = new_secret(FEED_TOKEN_PREFIX)
        async with self._sessions.begin() as session:
            await session.execute(
                insert(CalendarFeed)
                .values(user_id=actor.user_id, token_hash=digest, created_at=self._clock())
                .on_conflict_do_update(
                    index_elements=["user_id"], set_={"token_hash": digest, "created_at": self._clock()}
                )
            )
        url = f"{self._settings.public_api_url.rstrip('/')}/v1/calendar/{raw}.ics"
        return FeedToken(token=raw, url=url, webcal_url=re.sub(r"^https?://", "webcal://", url))

    async def revoke_feed_token(self, actor: AccessClaims) -> None:
        """Stop the caller's subscription feed."""
        async with self._sessions.begin() as session:
            await session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == actor.user_id))

    async def feed_ics(self, token: str) -> str:
        """The confirmed events of the token's owner; 404 for an unknown or revoked token."""
        async with self._sessions() as session:
            user_id = await session.scalar(
                select(CalendarFeed.user_id).where(CalendarFeed.token_hash == hash_secret(token))
            )
            if user_id is None:
                raise NotFound("no such calendar feed", code="feed_not_found")
            events = list(
                await session.scalars(
                    select(Event)
                    .join(Rsvp, Rsvp.event_id == Event.id)
                    .where(
                        Rsvp.user_id == user_id,
                        Rsvp.status == RsvpStatus.CONFIRMED.value,
                        Event.status != EventStatus.DRAFT.value,
                    )
                    .order_by(Event.start_time)
                )
            )
        calendar = _calendar()
        calendar.add("X-WR-CALNAME", "Tribe")
        for event in events:
            calendar.add_component(self._vevent(event, precise=True))
        return str(calendar.to_ical().decode())

    # ---- reminders -------------------------------------------------------------------------

    async def send_due_reminders(self, now: datetime) -> int:
        """Hand due 24 h and 1 h reminders to the outbox, each (event, user, kind, start time) once."""
        sent = 0
        async with self._sessions.begin() as session:
            for kind, lead in REMINDER_LEADS.items():
                # A 24 h reminder is pointless once the 1 h window has opened.
                window_end = now + lead
                window_start = now + REMINDER_LEADS[ReminderKind.HOUR] if kind == ReminderKind.DAY else now
                due = (
                    select(Rsvp.event_id, Rsvp.user_id, literal(kind.value), Event.start_time, literal(now))
                    .join(Event, Event.id == Rsvp.event_id)
                    .where(
                        Event.status == EventStatus.PUBLISHED.value,
                        Event.start_time > window_start,
                        Event.start_time <= window_end,
                        Rsvp.status == RsvpStatus.CONFIRMED.value,
                    )
                )
                inserted = (
                    await session.execute(
                        insert(ReminderSent)
                        .from_select(["event_id", "user_id", "kind", "start_time", "sent_at"], due)
                        .on_conflict_do_nothing()
                        .returning(ReminderSent.event_id, ReminderSent.user_id, ReminderSent.start_time)
                    )
                ).all()
                if inserted:
                    await bus.record(
                        session,
                        *(
                            bus.EventReminderDue(event_id=e, user_id=u, kind=kind.value, start_time=s)
                            for e, u, s in inserted
                        ),
                    )
                sent += len(inserted)
        return sent

    # ---- shared steps ----------------------------------------------------------------------

    async def _record_updated(self, session: AsyncSession, event: Event, changes: list[str]) -> None:
        """Append ``event.updated`` naming what changed and who holds confirmed seats now."""
        confirmed = list(
            await session.scalars(
                select(Rsvp.user_id)
                .where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.CONFIRMED.value)
                .order_by(Rsvp.id)
            )
        )
        await bus.record(
            session,
            bus.EventUpdated(
                event_id=event.id,
                changes=changes,
                status=event.status,
                sequence=event.sequence,
                attendee_ids=confirmed,
            ),
        )

    def share_url(self, event: Event) -> str:
        """The public share link of an event."""
        return f"{self._settings.public_app_url.rstrip('/')}/e/{event.slug}"

    async def _viewer(self, session: AsyncSession, event: Event, actor: AccessClaims) -> Viewer:
        return await _viewer_of(session, event, actor.user_id, actor.roles)

    async def _media_target_check(
        self, session: AsyncSession, caller_id: uuid.UUID, event_id: uuid.UUID
    ) -> TargetPolicy:
        """Media service hook: organizers and confirmed attendees may upload; 404 when the event is not visible."""
        event = await _event(session, event_id)
        roles = await session.scalar(select(User.roles).where(User.id == caller_id))
        viewer = await _viewer_of(session, event, caller_id, tuple(roles or ()))
        self._require_visible(event, viewer)
        confirmed = viewer.rsvp is not None and viewer.rsvp.status == RsvpStatus.CONFIRMED
        if not (viewer.editor or confirmed):
            raise PermissionDenied(
                "only organizers and confirmed attendees can add media to this event", code="not_attendee"
            )
        return TargetPolicy()

    async def request_media_upload(
        self, actor: AccessClaims, event_id: uuid.UUID, data: EventMediaRequest
    ) -> EventMediaTicket:
        """An upload slot for the event's media (organizers and confirmed attendees)."""
        size = data.size_bytes if data.size_bytes is not None else SIZE_LIMITS[MediaType(data.type)]
        ticket = await self._media.create_upload(
            actor,
            UploadRequest(
                type=data.type,
                content_type=data.content_type,
                file_name=data.file_name,
                size_bytes=size,
                purpose=Purpose.EVENT.value,
                target_id=ids.encode(ids.Prefix.EVENT, event_id),
            ),
        )
        return EventMediaTicket(
            upload_url=ticket.upload_url, media_id=ticket.media_id, expires_at=ticket.expires_at, upload=ticket.upload
        )

    def _require_visible(self, event: Event, viewer: Viewer) -> None:
        if viewer.editor:
            return
        if event.status == EventStatus.DRAFT:
            raise NotFound("no such event", code="event_not_found")
        if event.visibility == Visibility.CLUB and not (viewer.member or viewer.staff or viewer.rsvp is not None):
            raise NotFound("no such event", code="event_not_found")

    async def _editable(self, session: AsyncSession, event_id: uuid.UUID, actor: AccessClaims) -> Event:
        event = await _lock_event(session, event_id)
        viewer = await self._viewer(session, event, actor)
        self._require_visible(event, viewer)
        _require_editor(viewer)
        return event

    async def _detail(self, session: AsyncSession, event: Event, viewer: Viewer, user_id: uuid.UUID) -> EventDetail:
        preview_rows = (
            await session.execute(
                select(User.id, User.display_name, User.avatar_url)
                .join(Rsvp, Rsvp.user_id == User.id)
                .where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.CONFIRMED.value)
                .order_by(Rsvp.id)
                .limit(PREVIEW_SIZE)
            )
        ).all()
        waitlist = await session.scalar(
            select(func.count())
            .select_from(Rsvp)
            .where(Rsvp.event_id == event.id, Rsvp.status == RsvpStatus.WAITLISTED.value)
        )
        mine = viewer.rsvp
        return EventDetail(
            id=ids.encode(ids.Prefix.EVENT, event.id),
            title=event.title,
            description=event.description,
            start_time=event.start_time,
            end_time=event.end_time,
            timezone=event.timezone,
            location=_location(event, precise=_precise(event, viewer)),
            address_visibility=event.address_visibility,  # type: ignore[arg-type]
            capacity=event.capacity,
            attendees=AttendeesSummary(
                count=event.seats_taken,
                preview=[
                    AttendeePreview(user_id=ids.encode(ids.Prefix.USER, uid), display_name=name, avatar_url=avatar)
                    for uid, name, avatar in preview_rows
                ],
            ),
            media=await self._media.target_views(Purpose.EVENT, event.id),
            ticketing=Ticketing(
                type=event.ticket_type,  # type: ignore[arg-type]
                price_cents=event.price_cents,
                currency=event.currency,
                status=self._ticket_status(event),
                payment_provider=event.payment_provider,  # type: ignore[arg-type]
                refund_until_hours=event.refund_until_hours,
            ),
            waitlist_count=int(waitlist or 0),
            my_rsvp=(
                MyRsvp(
                    rsvp_id=ids.encode(ids.Prefix.RSVP, mine.id),
                    status=mine.status,  # type: ignore[arg-type]
                    guest_count=mine.guest_count,
                    waitlist_position=await _waitlist_position(session, mine),
                    ticket_code=mine.ticket_code,
                )
                if mine is not None
                else None
            ),
            share_url=self.share_url(event),
            status=event.status,  # type: ignore[arg-type]
            visibility=event.visibility,  # type: ignore[arg-type]
            kind=event.kind,  # type: ignore[arg-type]
            skill_level=event.skill_level,
            open_spots=_open_spots(event),
            requires_approval=event.requires_approval,
            tags=list(event.tags),
            club_id=ids.encode(ids.Prefix.CLUB, event.club_id) if event.club_id else None,
            organizer_id=ids.encode(ids.Prefix.USER, event.organizer_id),
            can_edit=viewer.editor,
            created_at=event.created_at,
            updated_at=event.updated_at,
            auto_approve=list(event.auto_approve),
            required_tier=event.required_tier,  # type: ignore[arg-type]
            locked=viewer.locked_out(event),
        )

    def _ticket_status(self, event: Event) -> Literal["open", "sold_out", "closed"]:
        if event.status != EventStatus.PUBLISHED or event.start_time <= self._clock():
            return "closed"
        if event.capacity is not None and event.seats_taken >= event.capacity:
            return "sold_out"
        return "open"

    def _summary(self, event: Event, distance: float | None) -> EventSummary:
        return EventSummary(
            id=ids.encode(ids.Prefix.EVENT, event.id),
            title=event.title,
            start_time=event.start_time,
            end_time=event.end_time,
            location=_location(event, precise=event.address_visibility == AddressVisibility.PUBLIC),
            kind=event.kind,  # type: ignore[arg-type]
            tags=list(event.tags),
            capacity=event.capacity,
            open_spots=_open_spots(event),
            club_id=ids.encode(ids.Prefix.CLUB, event.club_id) if event.club_id else None,
            share_url=self.share_url(event),
            distance_km=round(distance / 1000, 3) if distance is not None else None,
            required_tier=event.required_tier,  # type: ignore[arg-type]
        )

    def _vevent(self, event: Event, *, precise: bool) -> icalendar.Event:
        vevent = icalendar.Event()
        vevent.add("uid", f"{ids.encode(ids.Prefix.EVENT, event.id)}@tribe")
        vevent.add("dtstamp", event.updated_at)
        vevent.add("dtstart", event.start_time.astimezone(_UTC))
        vevent.add("dtend", event.end_time.astimezone(_UTC))
        vevent.add("summary", event.title)
        if event.description:
            vevent.add("description", event.description)
        where = event.location_name
        if precise and event.address:
            where = f"{where}, {event.address}"
        vevent.add("location", where)
        loc = _location(event, precise=precise)
        vevent.add("geo", (loc.latitude, loc.longitude))
        vevent.add("url", self.share_url(event))
        vevent.add("sequence", event.sequence)
        vevent.add("status", "CANCELLED" if event.status == EventStatus.CANCELLED else "CONFIRMED")
        return vevent


_UTC = zoneinfo.ZoneInfo("UTC")


def distance_m(lat: float, lng: float) -> ColumnElement[float]:
    """Great-circle metres from (lat, lng) to an event (earthdistance)."""
    return func.earth_distance(func.ll_to_earth(lat, lng), func.ll_to_earth(Event.latitude, Event.longitude))


def radius_condition(lat: float, lng: float, radius_m: float) -> ColumnElement[bool]:
    """Events within ``radius_m``: the earth_box test uses the GiST index, the distance test is exact."""
    box = func.earth_box(func.ll_to_earth(lat, lng), radius_m)
    return and_(
        box.op("@>")(func.ll_to_earth(Event.latitude, Event.longitude)),
        distance_m(lat, lng) <= radius_m,
    )


def bbox_condition(min_lng: float, min_lat: float, max_lng: float, max_lat: float) -> ColumnElement[bool]:
    """Events inside the box; ``point(lng, lat) <@ box`` uses the GiST point index."""
    box = func.box(func.point(min_lng, min_lat), func.point(max_lng, max_lat))
    return func.point(Event.longitude, Event.latitude).op("<@")(box)


def _calendar() -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Tribe//Events//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    return calendar


def _validate_times(start: datetime, end: datetime, tz: str, now: datetime) -> list[FieldError]:
    errors: list[FieldError] = []
    if start.tzinfo is None:
        errors.append(FieldError("start_time", "must include a UTC offset"))
    if end.tzinfo is None:
        errors.append(FieldError("end_time", "must include a UTC offset"))
    if errors:
        return errors
    if end <= start:
        errors.append(FieldError("end_time", "must be after start_time"))
    if start <= now:
        errors.append(FieldError("start_time", "must be in the future"))
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError("timezone", "not an IANA time zone"))
    return errors


def _validate_auto_approve(rules: Sequence[str], *, has_club: bool) -> list[FieldError]:
    known = {r.value for r in AutoApproveRule}
    errors = [
        FieldError(f"auto_approve[{i}]", f"unknown rule {rule!r}; expected one of {', '.join(sorted(known))}")
        for i, rule in enumerate(rules)
        if rule not in known
    ]
    if AutoApproveRule.CLUB_MEMBERS.value in rules and not has_club:
        errors.append(FieldError("auto_approve", "club_members needs the event to belong to a club"))
    return errors


def _error_code(errors: Sequence[FieldError]) -> str | None:
    """``invalid_auto_approve`` when a rule is at fault, so clients can tell it from other validation errors."""
    return "invalid_auto_approve" if any(e.field.startswith("auto_approve") for e in errors) else None


def _schedule_and_place(event: Event) -> dict[str, tuple[object, ...]]:
    """What attendees plan around: when and where."""
    return {
        "time": (event.start_time, event.end_time, event.timezone),
        "place": (event.location_name, event.latitude, event.longitude, event.address, event.city),
    }


def _changed_facets(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> list[str]:
    return [facet for facet in before if before[facet] != after[facet]]


async def _auto_approved(session: AsyncSession, event: Event, user_id: uuid.UUID) -> bool:
    """Whether one of the event's auto-approve rules lets ``user_id`` skip the organizer's approval."""
    rules = set(event.auto_approve)
    checks: list[ColumnElement[bool]] = []
    if AutoApproveRule.CLUB_MEMBERS.value in rules and event.club_id is not None:
        checks.append(
            exists().where(
                ClubMembership.club_id == event.club_id,
                ClubMembership.user_id == user_id,
                ClubMembership.status == MembershipStatus.ACTIVE.value,
            )
        )
    if AutoApproveRule.FRIENDS_OF_ORGANIZER.value in rules and user_id != event.organizer_id:
        low, high = sorted((user_id, event.organizer_id))
        checks.append(exists().where(Friendship.user_low_id == low, Friendship.user_high_id == high))
    if AutoApproveRule.VOUCHED_BY_ORGANIZER.value in rules:
        checks.append(
            exists().where(
                Vouch.voucher_id == event.organizer_id, Vouch.vouchee_id == user_id, Vouch.revoked_at.is_(None)
            )
        )
    if not checks:
        return False
    return bool(await session.scalar(select(or_(*checks))))


def _validate_ticketing(ticketing: TicketingIn) -> list[FieldError]:
    if ticketing.type == "paid" and ticketing.price_cents <= 0:
        return [FieldError("ticketing.price_cents", "paid events need a price")]
    if ticketing.type == "free" and ticketing.price_cents != 0:
        return [FieldError("ticketing.price_cents", "free events have no price")]
    return []


async def _check_ticketing_change(session: AsyncSession, event: Event, ticketing: TicketingIn) -> None:
    """The rule for changing ticketing once tickets exist (the caller holds the event lock).

    The price may change at any time: it is for later buyers, since every payment keeps what it charged
    and every held or offered seat keeps the price it was held or offered at. The currency may not change
    once any ticket was sold (earnings and refunds are in that currency), and the event may not turn free
    or change how it is paid while paid tickets or seats awaiting payment are live: refund or cancel first.
    """
    sold = select(TicketPayment.id).where(
        TicketPayment.event_id == event.id, TicketPayment.status.notin_(("failed", "void"))
    )
    if ticketing.currency.upper() != event.currency.upper() and await session.scalar(select(exists(sold))):
        raise Conflict(
            f"tickets were sold in {event.currency.upper()}; the currency can no longer change",
            code="currency_locked",
        )
    if ticketing.type == event.ticket_type and ticketing.payment_provider == event.payment_provider:
        return
    live = int(
        await session.scalar(
            select(func.count()).where(
                TicketPayment.event_id == event.id, TicketPayment.status.in_(LIVE_PAYMENT_STATUSES)
            )
        )
        or 0
    )
    waiting = int(
        await session.scalar(
            select(func.count()).where(
                Rsvp.event_id == event.id, Rsvp.status.in_((RsvpStatus.HELD.value, RsvpStatus.OFFERED.value))
            )
        )
        or 0
    )
    if live or waiting:
        raise Conflict(
            f"{live} paid tickets and {waiting} seats awaiting payment are live; refund them or cancel the event "
            "before making it free or changing how it is paid",
            code="paid_tickets_outstanding",
        )


def _apply_location(event: Event, location: LocationIn) -> None:
    event.location_name = location.name.strip()
    event.latitude = location.latitude
    event.longitude = location.longitude
    event.address = _blank_to_none(location.address)
    event.city = _blank_to_none(location.city)


def _apply_ticketing(event: Event, ticketing: TicketingIn) -> None:
    event.ticket_type = ticketing.type
    event.price_cents = ticketing.price_cents
    event.currency = ticketing.currency
    event.payment_provider = ticketing.payment_provider
    event.refund_until_hours = ticketing.refund_until_hours


def _precise(event: Event, viewer: Viewer) -> bool:
    return event.address_visibility == AddressVisibility.PUBLIC or viewer.sees_address


def _location(event: Event, *, precise: bool) -> Location:
    if precise:
        return Location(
            name=event.location_name,
            latitude=event.latitude,
            longitude=event.longitude,
            address=event.address,
            city=event.city,
            precise=True,
        )
    return Location(
        name=event.location_name,
        latitude=round(event.latitude, ROUNDED_DECIMALS),
        longitude=round(event.longitude, ROUNDED_DECIMALS),
        address=None,
        city=event.city,
        precise=False,
    )


def _open_spots(event: Event) -> int | None:
    return None if event.capacity is None else max(event.capacity - event.seats_taken, 0)


def _fits(event: Event, seats: int) -> bool:
    return event.capacity is None or event.seats_taken + seats <= event.capacity


def _is_club_editor(membership: ClubMembership | None) -> bool:
    return (
        membership is not None
        and membership.status == MembershipStatus.ACTIVE
        and membership.role in _CLUB_EDITOR_ROLES
    )


async def _viewer_of(session: AsyncSession, event: Event, user_id: uuid.UUID, roles: Sequence[str]) -> Viewer:
    membership = await _club_membership(session, event.club_id, user_id) if event.club_id is not None else None
    editor = event.organizer_id == user_id or Role.ADMIN.value in roles or _is_club_editor(membership)
    staff = bool(
        await session.scalar(select(exists().where(EventStaff.event_id == event.id, EventStaff.user_id == user_id)))
    )
    rsvp = await session.scalar(
        select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.user_id == user_id).execution_options(populate_existing=True)
    )
    member = membership is not None and membership.status == MembershipStatus.ACTIVE
    tier = await session.scalar(select(User.premium_tier).where(User.id == user_id)) if event.required_tier else None
    return Viewer(editor=editor, staff=staff, member=member, rsvp=rsvp, premium_tier=tier)


def _require_editor(viewer: Viewer) -> None:
    if not viewer.editor:
        raise PermissionDenied("only the organizer and club admins can do this", code="not_organizer")


async def _event(session: AsyncSession, event_id: uuid.UUID) -> Event:
    event = await session.get(Event, event_id)
    if event is None:
        raise NotFound("no such event", code="event_not_found")
    return event


async def _lock_event(session: AsyncSession, event_id: uuid.UUID) -> Event:
    event = await session.scalar(
        select(Event).where(Event.id == event_id).with_for_update().execution_options(populate_existing=True)
    )
    if event is None:
        raise NotFound("no such event", code="event_not_found")
    return event


async def _club_membership(session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> ClubMembership | None:
    return await session.scalar(
        select(ClubMembership).where(ClubMembership.club_id == club_id, ClubMembership.user_id == user_id)
    )


async def _waitlist_position(session: AsyncSession, rsvp: Rsvp) -> int | None:
    if rsvp.status != RsvpStatus.WAITLISTED or rsvp.queue_seq is None:
        return None
    ahead = await session.scalar(
        select(func.count())
        .select_from(Rsvp)
        .where(
            Rsvp.event_id == rsvp.event_id,
            Rsvp.status == RsvpStatus.WAITLISTED.value,
            Rsvp.queue_seq <= rsvp.queue_seq,
        )
    )
    return int(ahead or 0)


async def _history(
    session: AsyncSession, rsvp: Rsvp, previous: str | None, reason: str, actor_id: uuid.UUID | None
) -> None:
    session.add(
        RsvpChange(
            rsvp_id=rsvp.id,
            event_id=rsvp.event_id,
            user_id=rsvp.user_id,
            from_status=previous,
            to_status=rsvp.status,
            guest_count=rsvp.guest_count,
            reason=reason,
            actor_id=actor_id,
        )
    )
    await session.flush()


async def _users(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not user_ids:
        return {}
    return {u.id: u for u in await session.scalars(select(User).where(User.id.in_(list(user_ids))))}


async def _attendee(session: AsyncSession, rsvp: Rsvp, user: User, *, contact: bool) -> Attendee:
    base = Attendee(
        rsvp_id=ids.encode(ids.Prefix.RSVP, rsvp.id),
        user_id=ids.encode(ids.Prefix.USER, user.id),
        display_name=user.display_name,
        avatar_url=user.avatar_url,
        status=rsvp.status,  # type: ignore[arg-type]
        guest_count=rsvp.guest_count,
    )
    if not contact:
        return base
    base.waitlist_position = await _waitlist_position(session, rsvp)
    base.email = user.email
    base.checked_in_at = rsvp.checked_in_at
    return base


def _blank_to_none(value: str | None) -> str | None:
    return (value or "").strip() or None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _csv_safe(value: str) -> str:
    # A leading = + - @ makes spreadsheets evaluate the cell as a formula.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value
