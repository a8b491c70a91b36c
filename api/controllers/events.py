"""``/v1/events``: events, RSVPs, attendees, tickets and check-in, calendars and share pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import idempotent_response, parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.events.schemas import (
    Attendee,
    BatchApprove,
    BatchResult,
    CheckinRequest,
    CheckinResult,
    CreatedEvent,
    EventCreate,
    EventDetail,
    EventMediaRequest,
    EventMediaTicket,
    EventSummary,
    EventUpdate,
    FeedToken,
    PublicEvent,
    RsvpRequest,
    StaffMember,
    StaffRequest,
    StatusChange,
)
from shared.domain.events.services import EventFilters, EventService, parse_bbox, parse_near
from shared.domain.payments.idempotency import IdempotencyGuard
from shared.domain.payments.tickets import TicketService
from shared.errors import FieldError, InvalidInput, NotFound
from shared.pagination import Page

ICS_MEDIA_TYPE = "text/calendar; charset=utf-8"


def _event(event_id: str) -> uuid.UUID:
    return parse_id(ids.Prefix.EVENT, event_id)


def _body_id(prefix: ids.Prefix, field: str, value: str) -> uuid.UUID:
    """An id from a request body: malformed is a validation error, not a missing object."""
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError(field, f"not a valid {prefix.value}_ id")]) from None


class EventController(Controller):
    """Events and everything about attending one."""

    path = "/v1/events"
    tags = ["events"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: EventCreate, event_service: EventService, caller: AccessClaims) -> CreatedEvent:
        """Create a draft event (organizers, or admins of the given club)."""
        club_id = _body_id(ids.Prefix.CLUB, "club_id", data.club_id) if data.club_id is not None else None
        return await event_service.create_event(caller, data, club_id)

    @get("/")
    async def list_events(
        self,
        event_service: EventService,
        caller: AccessClaims,
        city: str | None = None,
        start_from: Annotated[datetime | None, Parameter(query="from")] = None,
        start_to: Annotated[datetime | None, Parameter(query="to")] = None,
        tag: str | None = None,
        club_id: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        near: str | None = None,
        radius_km: float | None = None,
        bbox: str | None = None,
        sort: str = "start_time",
        cursor: str | None = None,
        limit: int | None = None,
        premium_only: bool = False,
    ) -> Page[EventSummary]:
        """Published events the caller may see; filters, geo search, sorted by start time or distance."""
        filters = EventFilters(
            city=city,
            start_from=start_from,
            start_to=start_to,
            tag=tag,
            club_id=_body_id(ids.Prefix.CLUB, "club_id", club_id) if club_id is not None else None,
            kind=kind,
            q=q,
            near=parse_near(near) if near is not None else None,
            radius_km=radius_km,
            bbox=parse_bbox(bbox) if bbox is not None else None,
            sort=sort,
            premium_only=premium_only,
        )
        return await event_service.list_events(caller, filters, cursor, limit)

    @get("/{event_id:str}")
    async def detail(self, event_id: str, event_service: EventService, caller: AccessClaims) -> EventDetail:
        """An event with attendees summary, waitlist and the caller's RSVP."""
        return await event_service.get_event(caller, _event(event_id))

    @post("/{event_id:str}/media", status_code=HTTP_200_OK)
    async def media(
        self, event_id: str, data: EventMediaRequest, event_service: EventService, caller: AccessClaims
    ) -> EventMediaTicket:
        """An upload slot for the event's media (organizers and confirmed attendees); complete it via /v1/media."""
        return await event_service.request_media_upload(caller, _event(event_id), data)

    @patch("/{event_id:str}")
    async def update(
        self, event_id: str, data: EventUpdate, event_service: EventService, caller: AccessClaims
    ) -> EventDetail:
        """Change an event (organizer or club admin)."""
        return await event_service.update_event(caller, _event(event_id), data)

    @post("/{event_id:str}/publish", status_code=HTTP_200_OK)
    async def publish(self, event_id: str, event_service: EventService, caller: AccessClaims) -> StatusChange:
        """Publish a draft."""
        return await event_service.publish(caller, _event(event_id))

    @post("/{event_id:str}/cancel", status_code=HTTP_200_OK)
    async def cancel(self, event_id: str, event_service: EventService, caller: AccessClaims) -> StatusChange:
        """Cancel an event and notify its attendees."""
        return await event_service.cancel(caller, _event(event_id))

    @post("/{event_id:str}/complete", status_code=HTTP_200_OK)
    async def complete(self, event_id: str, event_service: EventService, caller: AccessClaims) -> StatusChange:
        """Mark a started event as completed."""
        return await event_service.complete(caller, _event(event_id))

    @post("/{event_id:str}/rsvp", status_code=HTTP_200_OK)
    async def rsvp(
        self,
        request: Request[AccessClaims, Any, Any],
        event_id: str,
        data: RsvpRequest,
        ticket_service: TicketService,
        idempotency: IdempotencyGuard,
        caller: AccessClaims,
    ) -> Response[bytes]:
        """Answer going, maybe or not going; on paid events ``going`` charges ``payment_method_id``.

        An ``Idempotency-Key`` header makes a retry replay the first answer (and reaches Stripe).
        """
        key = request.headers.get("idempotency-key")
        stored = await idempotency.run(
            caller.user_id,
            f"events.rsvp:{event_id}",
            key,
            data,
            HTTP_200_OK,
            lambda: ticket_service.rsvp(caller, _event(event_id), data, key),
        )
        return idempotent_response(stored)

    @get("/{event_id:str}/attendees")
    async def attendees(
        self,
        event_id: str,
        event_service: EventService,
        caller: AccessClaims,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Attendee]:
        """Organizers and staff: every RSVP with contact; others: confirmed attendees."""
        return await event_service.list_attendees(caller, _event(event_id), status, cursor, limit)

    @get("/{event_id:str}/attendees.csv")
    async def attendees_csv(self, event_id: str, event_service: EventService, caller: AccessClaims) -> Response[str]:
        """The attendee list as CSV (organizers)."""
        body = await event_service.attendees_csv(caller, _event(event_id))
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{event_id}-attendees.csv"'},
        )

    @post("/{event_id:str}/attendees/approve", status_code=HTTP_200_OK)
    async def approve_batch(
        self, event_id: str, data: BatchApprove, event_service: EventService, caller: AccessClaims
    ) -> BatchResult:
        """Approve pending RSVPs in the order given."""
        rsvp_ids = [_body_id(ids.Prefix.RSVP, "rsvp_ids", r) for r in data.rsvp_ids]
        return await event_service.decide(caller, _event(event_id), rsvp_ids, approve=True)

    @post("/{event_id:str}/attendees/{rsvp_id:str}/approve", status_code=HTTP_200_OK)
    async def approve(self, event_id: str, rsvp_id: str, event_service: EventService, caller: AccessClaims) -> Attendee:
        """Approve one pending RSVP."""
        result = await event_service.decide(
            caller, _event(event_id), [parse_id(ids.Prefix.RSVP, rsvp_id)], approve=True
        )
        return result.items[0]

    @post("/{event_id:str}/attendees/{rsvp_id:str}/reject", status_code=HTTP_200_OK)
    async def reject(self, event_id: str, rsvp_id: str, event_service: EventService, caller: AccessClaims) -> Attendee:
        """Reject or remove an RSVP; freed seats go to the waitlist."""
        result = await event_service.decide(
            caller, _event(event_id), [parse_id(ids.Prefix.RSVP, rsvp_id)], approve=False
        )
        return result.items[0]

    @post("/{event_id:str}/staff", status_code=HTTP_200_OK)
    async def add_staff(
        self, event_id: str, data: StaffRequest, event_service: EventService, caller: AccessClaims
    ) -> StaffMember:
        """Add check-in staff (organizers)."""
        user_id = _body_id(ids.Prefix.USER, "user_id", data.user_id)
        return await event_service.add_staff(caller, _event(event_id), user_id)

    @post("/{event_id:str}/checkin", status_code=HTTP_200_OK)
    async def checkin(
        self, event_id: str, data: CheckinRequest, event_service: EventService, caller: AccessClaims
    ) -> CheckinResult:
        """Spend a ticket (organizers and check-in staff)."""
        return await event_service.checkin(caller, _event(event_id), data.ticket_code)

    @get("/{event_id:str}/tickets/mine/qr.svg")
    async def ticket_qr(self, event_id: str, event_service: EventService, caller: AccessClaims) -> Response[str]:
        """The caller's ticket as a QR code."""
        svg = await event_service.ticket_qr_svg(caller, _event(event_id))
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})

    @get("/{event_id:str}/calendar.ics")
    async def calendar(self, event_id: str, event_service: EventService, caller: AccessClaims) -> Response[str]:
        """The event as an iCalendar file."""
        body = await event_service.event_ics(caller, _event(event_id))
        return Response(body, media_type=ICS_MEDIA_TYPE)


class CalendarController(Controller):
    """Per-user calendar subscription feeds."""

    path = "/v1/calendar"
    tags = ["events"]

    @post("/feed-token", status_code=HTTP_201_CREATED)
    async def rotate(self, event_service: EventService, caller: AccessClaims) -> FeedToken:
        """A new feed token; the previous one stops working."""
        return await event_service.rotate_feed_token(caller)

    @delete("/feed-token")
    async def revoke(self, event_service: EventService, caller: AccessClaims) -> None:
        """Revoke the caller's feed."""
        await event_service.revoke_feed_token(caller)

    @get("/{feed_file:str}", exclude_from_auth=True)
    async def feed(self, feed_file: str, event_service: EventService) -> Response[str]:
        """The token owner's confirmed events (no auth: the token is the secret)."""
        token, dot, ext = feed_file.rpartition(".")
        if not dot or ext != "ics" or not token:
            raise NotFound("no such calendar feed", code="feed_not_found")
        body = await event_service.feed_ics(token)
        return Response(body, media_type=ICS_MEDIA_TYPE, headers={"Cache-Control": "private, max-age=300"})


class PublicEventController(Controller):
    """Share pages that need no account."""

    path = "/v1/public/events"
    tags = ["events"]

    @get("/{slug:str}", exclude_from_auth=True)
    async def share_page(self, slug: str, event_service: EventService) -> PublicEvent:
        """A public event's share page."""
        return await event_service.public_event(slug)
