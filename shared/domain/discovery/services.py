"""Discovery verbs: recommendations served from the table (cold start on read), dismissals, icebreakers,
places, curated lists and the map overlay."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

import msgspec
from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement, SQLCoreOperations

from shared import ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership, MembershipStatus, Privacy
from shared.domain.discovery import scoring
from shared.domain.discovery.engine import refresh_user
from shared.domain.discovery.icebreakers import active_prompts, prompt_of_day
from shared.domain.discovery.models import (
    ContentCase,
    ContentCaseAction,
    CuratedList,
    CuratedListItem,
    Place,
    RecKind,
    Recommendation,
    RecommendationDismissal,
    RecommendationRun,
    RunTrigger,
)
from shared.domain.discovery.schemas import (
    ClubRecommendation,
    ContentCaseView,
    ContentReportRequest,
    ContentResolveRequest,
    DismissRequest,
    EventRecommendation,
    Icebreaker,
    IcebreakerToday,
    ListCreate,
    ListItemIn,
    ListItemOut,
    ListOut,
    ListUpdate,
    MapPin,
    MapView,
    PersonRecommendation,
    PlaceCreate,
    PlaceOut,
    PlaceUpdate,
)
from shared.domain.events.models import Event, EventStatus, Visibility
from shared.domain.media.models import Purpose
from shared.domain.media.schemas import MediaView
from shared.domain.media.services import MediaService
from shared.domain.moderation.cases import write_audit
from shared.domain.moderation.models import AuditAction, CaseStatus
from shared.domain.payments.boosts import boosted_event_filter
from shared.domain.social.models import Block, FriendRequest, FriendRequestStatus, Friendship
from shared.domain.users.models import AccountStatus, Role, User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

TIME_RANGES = ("today", "week", "weekend", "month")
MAP_LAYERS = ("events", "places")
MAP_PIN_LIMIT = 500
MAX_MAP_SPAN_DEGREES = 60.0
CURATOR_ROLES = frozenset({Role.CURATOR.value, Role.ADMIN.value})
MODERATOR_ROLES = frozenset({Role.MODERATOR.value, Role.ADMIN.value})


class _ScoreKey(msgspec.Struct, frozen=True):
    score: float
    id: uuid.UUID


class _IdKey(msgspec.Struct, frozen=True):
    id: uuid.UUID


def _after(key: _ScoreKey, score: SQLCoreOperations[float] = Recommendation.score) -> ColumnElement[bool]:
    """Rows after ``key`` in (score desc, target id) order; ``score`` defaults to the stored one."""
    return or_(score < key.score, and_(score == key.score, Recommendation.target_id > key.id))


def parse_time_range(raw: str | None, tz_name: str, now: datetime) -> tuple[datetime, datetime] | None:
    """``today``, ``week``, ``weekend`` or ``month`` in the user's time zone → [start, end); 422 otherwise."""
    if raw is None:
        return None
    if raw not in TIME_RANGES:
        raise InvalidInput(errors=[FieldError("time_range", f"must be one of {', '.join(TIME_RANGES)}")])
    try:
        tz = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(tz)
    midnight = datetime.combine(local.date(), time(), tzinfo=tz)
    match raw:
        case "today":
            return now, midnight + timedelta(days=1)
        case "week":
            return now, now + timedelta(days=7)
        case "month":
            return now, now + timedelta(days=30)
    # The coming weekend (Saturday and Sunday); during one, what is left of it.
    saturday = midnight + timedelta(days=(5 - local.weekday()) % 7)
    if local.weekday() == 6:
        saturday = midnight - timedelta(days=1)
    return max(now, saturday), saturday + timedelta(days=2)


def parse_layers(raw: str | None) -> set[str]:
    """``events,places`` → the set; 422 on an unknown layer."""
    if raw is None or not raw.strip():
        return set(MAP_LAYERS)
    layers = {part.strip() for part in raw.split(",") if part.strip()}
    if not layers or not layers <= set(MAP_LAYERS):
        raise InvalidInput(errors=[FieldError("layers", "a comma-separated subset of events,places")])
    return layers


def _decode_body_id(prefix: ids.Prefix, field: str, value: str) -> uuid.UUID:
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError(field, f"not a valid {prefix.value}_ id")]) from None


def _place_out(place: Place, media: dict[uuid.UUID, MediaView] | None = None) -> PlaceOut:
    views = media or {}
    return PlaceOut(
        id=ids.encode(ids.Prefix.PLACE, place.id),
        name=place.name,
        category=place.category,
        city=place.city,
        latitude=place.latitude,
        longitude=place.longitude,
        description=place.description,
        media_urls=list(place.media_urls),
        is_premium=place.is_premium,
        created_by=ids.encode(ids.Prefix.USER, place.created_by),
        created_at=place.created_at,
        media_ids=[ids.encode(ids.Prefix.MEDIA, m) for m in place.media_ids],
        media=[views[m] for m in place.media_ids if m in views],
    )


async def _media_views(media: MediaService | None, places: Sequence[Place]) -> dict[uuid.UUID, MediaView]:
    """Ready media of ``places`` by id (none when the service runs without media, as in workers)."""
    wanted = [m for p in places for m in p.media_ids]
    if media is None or not wanted:
        return {}
    return await media.views(wanted)


def _media_ids(values: Sequence[str]) -> list[uuid.UUID]:
    decoded = [_decode_body_id(ids.Prefix.MEDIA, f"media_ids[{i}]", v) for i, v in enumerate(values)]
    if len(set(decoded)) != len(decoded):
        raise InvalidInput(errors=[FieldError("media_ids", "a media item may appear once")])
    return decoded


def _case_view(case: ContentCase) -> ContentCaseView:
    return ContentCaseView(
        id=ids.encode(ids.Prefix.CASE, case.id),
        place_id=ids.encode(ids.Prefix.PLACE, case.place_id) if case.place_id else None,
        list_id=ids.encode(ids.Prefix.LIST, case.list_id) if case.list_id else None,
        reporter_id=ids.encode(ids.Prefix.USER, case.reporter_id),
        reason=case.reason,
        status=case.status,
        resolution=case.resolution,
        note=case.note,
        resolved_by=ids.encode(ids.Prefix.USER, case.resolved_by) if case.resolved_by else None,
        created_at=case.created_at,
        resolved_at=case.resolved_at,
    )


_CONTENT_AUDIT = {
    ("place", ContentCaseAction.HIDE): AuditAction.PLACE_HIDE,
    ("place", ContentCaseAction.REMOVE): AuditAction.PLACE_REMOVE,
    ("list", ContentCaseAction.HIDE): AuditAction.LIST_HIDE,
    ("list", ContentCaseAction.REMOVE): AuditAction.LIST_REMOVE,
    ("place", ContentCaseAction.DISMISS): AuditAction.CONTENT_DISMISS,
    ("list", ContentCaseAction.DISMISS): AuditAction.CONTENT_DISMISS,
}


class DiscoveryService:
    """Recommendations, icebreakers, places, lists and the map; each verb is one transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        media: MediaService | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        # Place media; optional so workers (which only refresh recommendations) need no object store.
        self._media = media

    def _media_service(self) -> MediaService:
        if self._media is None:
            raise RuntimeError("DiscoveryService was built without a MediaService; place media needs one")
        return self._media

    # ---- recommendations -----------------------------------------------------------------

    async def refresh(self, user_id: uuid.UUID, trigger: RunTrigger) -> bool:
        """Recompute one user's recommendations now (worker jobs and cold start)."""
        async with self._sessions.begin() as session:
            return await refresh_user(session, user_id, self._clock(), trigger.value)

    async def _ensure_computed(self, user_id: uuid.UUID) -> None:
        """Cold start: a user never refreshed gets recommendations computed on this read."""
        async with self._sessions() as session:
            done = await session.scalar(select(exists().where(RecommendationRun.user_id == user_id)))
        if not done:
            await self.refresh(user_id, RunTrigger.COLD_START)

    async def people_for(
        self, actor: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[PersonRecommendation]:
        """People for the caller (only their own list), best first."""
        if user_id != actor.user_id:
            raise PermissionDenied("recommendations are only for their owner", code="not_own_recommendations")
        size = clamp_limit(limit)
        key = decode_cursor(cursor, _ScoreKey) if cursor is not None else None
        await self._ensure_computed(actor.user_id)
        me = actor.user_id
        # Re-checked on every read so a block, friendship or request made since the refresh takes effect now.
        blocked = exists().where(
            or_(
                and_(Block.blocker_id == me, Block.blocked_id == User.id),
                and_(Block.blocker_id == User.id, Block.blocked_id == me),
            )
        )
        friends = exists().where(
            Friendship.user_low_id == func.least(me, User.id), Friendship.user_high_id == func.greatest(me, User.id)
        )
        requested = exists().where(
            FriendRequest.status.in_([FriendRequestStatus.PENDING.value, FriendRequestStatus.DECLINED.value]),
            or_(
                and_(FriendRequest.sender_id == me, FriendRequest.recipient_id == User.id),
                and_(FriendRequest.sender_id == User.id, FriendRequest.recipient_id == me),
            ),
        )
        query = (
            select(Recommendation, User.display_name)
            .join(User, User.id == Recommendation.target_id)
            .where(
                Recommendation.user_id == me,
                Recommendation.kind == RecKind.PERSON.value,
                User.status != AccountStatus.SUSPENDED.value,
                ~blocked,
                ~friends,
                ~requested,
            )
        )
        if key is not None:
            query = query.where(_after(key))
        query = query.order_by(Recommendation.score.desc(), Recommendation.target_id).limit(size + 1)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).all())
        page = make_page(rows, size, lambda r: _ScoreKey(score=r[0].score, id=r[0].target_id))
        return Page(
            items=[
                PersonRecommendation(
                    id=ids.encode(ids.Prefix.USER, rec.target_id),
                    display_name=name,
                    mutual_interests=list(rec.details.get("mutual_interests", [])),
                    shared_clubs=list(rec.details.get("shared_clubs", [])),
                    compatibility_score=rec.score,
                    icebreaker_prompt=str(rec.details.get("icebreaker_prompt", "")),
                    reason=rec.reason,
                )
                for rec, name in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def events_for(
        self,
        actor: AccessClaims,
        *,
        city: str | None,
        time_range: str | None,
        premium_only: bool,
        cursor: str | None,
        limit: int | None,
    ) -> Page[EventRecommendation]:
        """Events for the caller, best first, with the filters of seed 000 §2.2."""
        size = clamp_limit(limit)
        key = decode_cursor(cursor, _ScoreKey) if cursor is not None else None
        now = self._clock()
        async with self._sessions() as session:
            user = await session.get(User, actor.user_id)
        if user is None:
            raise NotFound("no such user", code="user_not_found")
        window = parse_time_range(time_range, user.timezone, now)
        await self._ensure_computed(actor.user_id)
        member = exists().where(
            ClubMembership.club_id == Event.club_id,
            ClubMembership.user_id == actor.user_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        )
        conditions: list[ColumnElement[bool]] = [
            Recommendation.user_id == actor.user_id,
            Recommendation.kind == RecKind.EVENT.value,
            # Re-checked on read: an event that filled up, started or was cancelled since the refresh drops out.
            Event.status == EventStatus.PUBLISHED.value,
            Event.start_time > now,
            or_(Event.capacity.is_(None), Event.seats_taken < Event.capacity),
            or_(Event.visibility == Visibility.PUBLIC.value, and_(Event.visibility == Visibility.CLUB.value, member)),
        ]
        if city is not None and city.strip():
            conditions.append(func.lower(Event.city) == city.strip().lower())
        if window is not None:
            conditions.append(and_(Event.start_time >= window[0], Event.start_time < window[1]))
        if premium_only:
            conditions.append(or_(Event.required_tier.is_not(None), Club.required_tier.is_not(None)))
        # Stored scores leave boosts out; a live boost adds its share now, so it counts only in its window.
        boosted = boosted_event_filter(now, "discover_feed")
        score = func.least(Recommendation.score + case((boosted, scoring.boost_share()), else_=0.0), 1.0)
        query = (
            select(Recommendation, Event.title, Event.start_time, Event.city, score.label("score"), boosted)
            .join(Event, Event.id == Recommendation.target_id)
            .outerjoin(Club, Club.id == Event.club_id)
            .where(*conditions)
        )
        if key is not None:
            query = query.where(_after(key, score))
        query = query.order_by(score.desc(), Recommendation.target_id).limit(size + 1)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).all())
        page = make_page(rows, size, lambda r: _ScoreKey(score=r[4], id=r[0].target_id))
        return Page(
            items=[
                EventRecommendation(
                    id=ids.encode(ids.Prefix.EVENT, rec.target_id),
                    title=title,
                    start_time=start,
                    score=live_score,
                    reason="Sponsored" if sponsored else rec.reason,
                    city=event_city,
                )
                for rec, title, start, event_city, live_score, sponsored in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def clubs_for(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[ClubRecommendation]:
        """Clubs for the caller, best first."""
        size = clamp_limit(limit)
        key = decode_cursor(cursor, _ScoreKey) if cursor is not None else None
        await self._ensure_computed(actor.user_id)
        has_row = exists().where(ClubMembership.club_id == Club.id, ClubMembership.user_id == actor.user_id)
        query = (
            select(Recommendation, Club)
            .join(Club, Club.id == Recommendation.target_id)
            .where(
                Recommendation.user_id == actor.user_id,
                Recommendation.kind == RecKind.CLUB.value,
                Club.deleted_at.is_(None),
                Club.privacy_level != Privacy.SECRET.value,
                ~has_row,
            )
        )
        if key is not None:
            query = query.where(_after(key))
        query = query.order_by(Recommendation.score.desc(), Recommendation.target_id).limit(size + 1)
        async with self._sessions() as session:
            rows = list((await session.execute(query)).all())
        page = make_page(rows, size, lambda r: _ScoreKey(score=r[0].score, id=r[0].target_id))
        return Page(
            items=[
                ClubRecommendation(
                    id=ids.encode(ids.Prefix.CLUB, club.id),
                    name=club.name,
                    city=club.city,
                    member_count=club.member_count,
                    score=rec.score,
                    reason=rec.reason,
                )
                for rec, club in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def dismiss(self, actor: AccessClaims, data: DismissRequest) -> None:
        """ "Not interested": the item leaves the caller's list now and never comes back."""
        kind = RecKind(data.kind)
        prefix, key_column = {
            RecKind.EVENT: (ids.Prefix.EVENT, Event.id),
            RecKind.PERSON: (ids.Prefix.USER, User.id),
            RecKind.CLUB: (ids.Prefix.CLUB, Club.id),
        }[kind]
        target = _decode_body_id(prefix, "id", data.id)
        if kind is RecKind.PERSON and target == actor.user_id:
            raise InvalidInput(errors=[FieldError("id", "you cannot dismiss yourself")])
        async with self._sessions.begin() as session:
            found = await session.scalar(select(key_column).where(key_column == target))
            if found is None:
                raise NotFound(f"no such {prefix.value}", code="not_found")
            await session.execute(
                pg_insert(RecommendationDismissal)
                .values(user_id=actor.user_id, kind=kind.value, target_id=target, created_at=self._clock())
                .on_conflict_do_nothing()
            )
            await session.execute(
                delete(Recommendation).where(
                    Recommendation.user_id == actor.user_id,
                    Recommendation.kind == kind.value,
                    Recommendation.target_id == target,
                )
            )

    # ---- icebreakers ---------------------------------------------------------------------

    async def icebreaker_today(self, actor: AccessClaims, day: date | None) -> IcebreakerToday:
        """The prompt of ``day`` (default: today in the caller's time zone); the same for everyone that day."""
        async with self._sessions() as session:
            if day is None:
                tz_name = await session.scalar(select(User.timezone).where(User.id == actor.user_id)) or "UTC"
                try:
                    day = self._clock().astimezone(zoneinfo.ZoneInfo(tz_name)).date()
                except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                    day = self._clock().date()
            prompt = prompt_of_day(await active_prompts(session), day)
        if prompt is None:
            raise NotFound("the icebreaker catalog is empty", code="no_icebreakers")
        return IcebreakerToday(date=day, prompt=Icebreaker(id=prompt.id, text=prompt.text, topic=prompt.topic))

    # ---- places --------------------------------------------------------------------------

    async def create_place(self, actor: AccessClaims, data: PlaceCreate) -> PlaceOut:
        """Add a place (curators and admins)."""
        _require_curator(actor)
        media_ids = _media_ids(data.media_ids)
        async with self._sessions.begin() as session:
            place = Place(
                created_by=actor.user_id,
                name=data.name.strip(),
                category=data.category,
                city=data.city.strip(),
                latitude=data.latitude,
                longitude=data.longitude,
                description=data.description,
                media_urls=list(data.media_urls),
                is_premium=data.is_premium,
                media_ids=media_ids,
            )
            session.add(place)
            await session.flush()
            if media_ids:
                # Owned and ready uploads only (404 media_not_found / 422 media_not_ready), as posts attach media.
                await self._media_service().claim_for_attachment(
                    session, actor.user_id, media_ids, Purpose.PLACE, place.id
                )
            await session.refresh(place)
        return _place_out(place, await _media_views(self._media, [place]))

    async def get_place(self, actor: AccessClaims, place_id: uuid.UUID) -> PlaceOut:
        """One place."""
        async with self._sessions() as session:
            place = await _live_place(session, place_id)
        return _place_out(place, await _media_views(self._media, [place]))

    async def list_places(
        self, actor: AccessClaims, city: str | None, category: str | None, cursor: str | None, limit: int | None
    ) -> Page[PlaceOut]:
        """Places, newest first, by city and category."""
        size = clamp_limit(limit)
        query = select(Place).where(Place.deleted_at.is_(None), Place.hidden_at.is_(None))
        if city and city.strip():
            query = query.where(func.lower(Place.city) == city.strip().lower())
        if category:
            query = query.where(Place.category == category)
        if cursor is not None:
            query = query.where(Place.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            rows = list(await session.scalars(query.order_by(Place.id.desc()).limit(size + 1)))
        page = make_page(rows, size, lambda p: _IdKey(id=p.id))
        media = await _media_views(self._media, page.items)
        return Page(items=[_place_out(p, media) for p in page.items], next_cursor=page.next_cursor)

    async def update_place(self, actor: AccessClaims, place_id: uuid.UUID, patch: PlaceUpdate) -> PlaceOut:
        """Change a place: its curator or an admin."""
        values = {f: v for f in patch.__struct_fields__ if (v := getattr(patch, f)) is not msgspec.UNSET}
        raw_media = values.pop("media_ids", None)
        wanted = _media_ids(raw_media) if raw_media is not None else None
        async with self._sessions.begin() as session:
            place = await _live_place(session, place_id, lock=True)
            if place.created_by != actor.user_id and Role.ADMIN.value not in actor.roles:
                raise PermissionDenied("only the place's curator can change it", code="not_allowed")
            for field, value in values.items():
                setattr(place, field, value)
            if wanted is not None:
                media = self._media_service()
                await media.claim_for_attachment(session, actor.user_id, wanted, Purpose.PLACE, place.id)
                await media.release_attachment(session, Purpose.PLACE, place.id, keep=wanted)
                place.media_ids = wanted
            await session.flush()
            await session.refresh(place)
        return _place_out(place, await _media_views(self._media, [place]))

    async def delete_place(self, actor: AccessClaims, place_id: uuid.UUID) -> None:
        """Remove a place: its curator, or a moderator (as with posts)."""
        async with self._sessions.begin() as session:
            place = await _live_place(session, place_id, lock=True)
            if place.created_by != actor.user_id and not MODERATOR_ROLES & set(actor.roles):
                raise PermissionDenied("only the curator or a moderator can remove a place", code="not_allowed")
            place.deleted_at = self._clock()
            if place.created_by != actor.user_id:
                await write_audit(session, actor.user_id, AuditAction.PLACE_REMOVE, place.id)
            elif place.media_ids and self._media is not None:
                # The curator's own removal takes its media with it, as a deleted post's does.
                await self._media.discard_attached(session, Purpose.PLACE, place.id)

    # ---- curated lists -------------------------------------------------------------------

    async def create_list(self, actor: AccessClaims, data: ListCreate) -> ListOut:
        """A new must-visit list (curators and admins)."""
        _require_curator(actor)
        async with self._sessions.begin() as session:
            lst = CuratedList(
                curator_id=actor.user_id,
                title=data.title.strip(),
                description=data.description,
                city=data.city.strip() if data.city else None,
            )
            session.add(lst)
            await session.flush()
            await session.refresh(lst)
            await _write_items(session, lst.id, data.items)
            return await _list_out(session, lst, self._media)

    async def get_list(self, actor: AccessClaims, list_id: uuid.UUID) -> ListOut:
        """A list with its places in order (removed places drop out)."""
        async with self._sessions() as session:
            return await _list_out(session, await _live_list(session, list_id), self._media)

    async def list_lists(
        self, actor: AccessClaims, city: str | None, curator: uuid.UUID | None, cursor: str | None, limit: int | None
    ) -> Page[ListOut]:
        """Lists, newest first, by city or curator."""
        size = clamp_limit(limit)
        query = select(CuratedList).where(CuratedList.deleted_at.is_(None), CuratedList.hidden_at.is_(None))
        if city and city.strip():
            query = query.where(func.lower(CuratedList.city) == city.strip().lower())
        if curator is not None:
            query = query.where(CuratedList.curator_id == curator)
        if cursor is not None:
            query = query.where(CuratedList.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            rows = list(await session.scalars(query.order_by(CuratedList.id.desc()).limit(size + 1)))
            page = make_page(rows, size, lambda x: _IdKey(id=x.id))
            items = [await _list_out(session, x, self._media) for x in page.items]
        return Page(items=items, next_cursor=page.next_cursor)

    async def update_list(self, actor: AccessClaims, list_id: uuid.UUID, patch: ListUpdate) -> ListOut:
        """Change a list (its curator or an admin); ``items`` rewrites the order in one transaction."""
        async with self._sessions.begin() as session:
            lst = await _live_list(session, list_id, lock=True)
            if lst.curator_id != actor.user_id and Role.ADMIN.value not in actor.roles:
                raise PermissionDenied("only the list's curator can change it", code="not_allowed")
            if patch.title is not msgspec.UNSET:
                lst.title = patch.title.strip()
            if patch.description is not msgspec.UNSET:
                lst.description = patch.description
            if patch.items is not msgspec.UNSET:
                await session.execute(delete(CuratedListItem).where(CuratedListItem.list_id == lst.id))
                await _write_items(session, lst.id, patch.items)
            await session.flush()
            return await _list_out(session, lst, self._media)

    async def delete_list(self, actor: AccessClaims, list_id: uuid.UUID) -> None:
        """Remove a list: its curator or a moderator."""
        async with self._sessions.begin() as session:
            lst = await _live_list(session, list_id, lock=True)
            if lst.curator_id != actor.user_id and not MODERATOR_ROLES & set(actor.roles):
                raise PermissionDenied("only the curator or a moderator can remove a list", code="not_allowed")
            lst.deleted_at = self._clock()
            if lst.curator_id != actor.user_id:
                await write_audit(session, actor.user_id, AuditAction.LIST_REMOVE, lst.id)

    # ---- moderation of places and lists ---------------------------------------------------

    async def report(
        self, actor: AccessClaims, kind: str, target_id: uuid.UUID, data: ContentReportRequest
    ) -> tuple[ContentCaseView, bool]:
        """Open a case on a place or list (``kind``); an open report of the caller's is returned as is (``False``)."""
        reason = data.reason.strip()
        if not reason:
            raise InvalidInput(errors=[FieldError("reason", "must not be blank")])
        async with self._sessions.begin() as session:
            if kind == "place":
                owner = (await _live_place(session, target_id)).created_by
                column, where = ContentCase.place_id, ContentCase.place_id.is_not(None)
            else:
                owner = (await _live_list(session, target_id)).curator_id
                column, where = ContentCase.list_id, ContentCase.list_id.is_not(None)
            if owner == actor.user_id:
                raise InvalidInput(f"you cannot report your own {kind}", code=f"cannot_report_own_{kind}")
            # The partial unique index decides between concurrent reports by the same user.
            created = await session.scalar(
                pg_insert(ContentCase)
                .values({column.key: target_id, "id": ids.uuid7(), "reporter_id": actor.user_id, "reason": reason})
                .on_conflict_do_nothing(
                    index_elements=[column.key, "reporter_id"],
                    index_where=and_(ContentCase.status == CaseStatus.OPEN.value, where),
                )
                .returning(ContentCase.id)
            )
            case = await session.scalar(
                select(ContentCase).where(
                    column == target_id,
                    ContentCase.reporter_id == actor.user_id,
                    ContentCase.status == CaseStatus.OPEN.value,
                )
            )
            assert case is not None
            return _case_view(case), created is not None

    async def list_cases(
        self, actor: AccessClaims, status: str | None, cursor: str | None, limit: int | None
    ) -> Page[ContentCaseView]:
        """Reports on places and lists, newest first (moderators); ``status`` is open (default), resolved or all."""
        _require_moderator(actor)
        wanted = status or CaseStatus.OPEN.value
        if wanted not in ("open", "resolved", "all"):
            raise InvalidInput(errors=[FieldError("status", "one of open, resolved, all")])
        size = clamp_limit(limit)
        query = select(ContentCase).order_by(ContentCase.id.desc()).limit(size + 1)
        if wanted != "all":
            query = query.where(ContentCase.status == wanted)
        if cursor is not None:
            query = query.where(ContentCase.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            rows = list(await session.scalars(query))
        page = make_page(rows, size, lambda c: _IdKey(id=c.id))
        return Page(items=[_case_view(c) for c in page.items], next_cursor=page.next_cursor)

    async def resolve_case(
        self, actor: AccessClaims, case_id: uuid.UUID, data: ContentResolveRequest
    ) -> ContentCaseView:
        """Hide or remove the reported item (settling every open report on it), or dismiss this report; audited."""
        _require_moderator(actor)
        action = ContentCaseAction(data.action)
        note = data.note.strip() if data.note else None
        async with self._sessions.begin() as session:
            case = await session.scalar(select(ContentCase).where(ContentCase.id == case_id).with_for_update())
            if case is None:
                raise NotFound("no such case", code="case_not_found")
            if case.status != CaseStatus.OPEN.value:
                raise Conflict("this case is already resolved", code="case_already_resolved")
            now = self._clock()
            target: Place | CuratedList | None
            if case.place_id is not None:
                kind, target_id = "place", case.place_id
                target = await session.scalar(select(Place).where(Place.id == target_id).with_for_update())
                same_target = ContentCase.place_id == target_id
            else:
                assert case.list_id is not None
                kind, target_id = "list", case.list_id
                target = await session.scalar(select(CuratedList).where(CuratedList.id == target_id).with_for_update())
                same_target = ContentCase.list_id == target_id
            assert target is not None  # cases cascade with their target
            if action == ContentCaseAction.HIDE and target.hidden_at is None:
                target.hidden_at, target.hidden_by = now, actor.user_id
            elif action == ContentCaseAction.REMOVE and target.deleted_at is None:
                target.deleted_at = now
            settled = same_target if action != ContentCaseAction.DISMISS else ContentCase.id == case.id
            await session.execute(
                update(ContentCase)
                .where(settled, ContentCase.status == CaseStatus.OPEN.value)
                .values(
                    status=CaseStatus.RESOLVED.value,
                    resolution=action.value,
                    note=note,
                    resolved_by=actor.user_id,
                    resolved_at=now,
                )
            )
            await write_audit(
                session, actor.user_id, _CONTENT_AUDIT[(kind, action)], target_id, case_id=case.id, note=note
            )
            await session.refresh(case)
            return _case_view(case)

    async def restore(self, actor: AccessClaims, kind: str, target_id: uuid.UUID) -> None:
        """Show a hidden place or list again (moderators); audited. Removed items stay removed."""
        _require_moderator(actor)
        model: type[Place] | type[CuratedList] = Place if kind == "place" else CuratedList
        async with self._sessions.begin() as session:
            restored = await session.scalar(
                update(model)
                .where(model.id == target_id, model.deleted_at.is_(None), model.hidden_at.is_not(None))
                .values(hidden_at=None, hidden_by=None)
                .returning(model.id)
            )
            if restored is None:
                raise NotFound(f"no hidden {kind} with this id", code=f"{kind}_not_found")
            action = AuditAction.PLACE_RESTORE if kind == "place" else AuditAction.LIST_RESTORE
            await write_audit(session, actor.user_id, action, target_id)

    # ---- map -----------------------------------------------------------------------------

    async def map_view(
        self,
        actor: AccessClaims,
        *,
        bbox: tuple[float, float, float, float],
        layers: set[str],
        start_from: datetime | None,
        start_to: datetime | None,
        category: str | None,
        premium_only: bool,
    ) -> MapView:
        """Pins of visible upcoming events and places inside ``bbox`` (``minLng,minLat,maxLng,maxLat``)."""
        min_lng, min_lat, max_lng, max_lat = bbox
        if max_lng - min_lng > MAX_MAP_SPAN_DEGREES or max_lat - min_lat > MAX_MAP_SPAN_DEGREES:
            raise InvalidInput(errors=[FieldError("bbox", f"at most {MAX_MAP_SPAN_DEGREES:g} degrees across")])
        if start_from is not None and start_to is not None and start_to <= start_from:
            raise InvalidInput(errors=[FieldError("to", "must be after from")])
        box = func.box(func.point(min_lng, min_lat), func.point(max_lng, max_lat))
        now = self._clock()
        pins: list[MapPin] = []
        truncated = False
        async with self._sessions() as session:
            if "events" in layers:
                member = exists().where(
                    ClubMembership.club_id == Event.club_id,
                    ClubMembership.user_id == actor.user_id,
                    ClubMembership.status == MembershipStatus.ACTIVE.value,
                )
                query = (
                    select(Event, Club.required_tier)
                    .outerjoin(Club, Club.id == Event.club_id)
                    .where(
                        Event.status == EventStatus.PUBLISHED.value,
                        Event.start_time >= (start_from or now),
                        or_(
                            Event.visibility == Visibility.PUBLIC.value,
                            and_(Event.visibility == Visibility.CLUB.value, member),
                        ),
                        func.point(Event.longitude, Event.latitude).op("<@")(box),
                    )
                )
                if start_to is not None:
                    query = query.where(Event.start_time < start_to)
                if category:
                    query = query.where(Event.tags.contains([category.strip().lower()]))
                if premium_only:
                    query = query.where(or_(Event.required_tier.is_not(None), Club.required_tier.is_not(None)))
                rows = list(
                    (await session.execute(query.order_by(Event.start_time, Event.id).limit(MAP_PIN_LIMIT + 1))).all()
                )
                truncated |= len(rows) > MAP_PIN_LIMIT
                for event, required in rows[:MAP_PIN_LIMIT]:
                    # Exact spots of attendees-only addresses are not pinned; the rounded point is enough for a map.
                    precise = event.address_visibility == "public"
                    pins.append(
                        MapPin(
                            layer="events",
                            id=ids.encode(ids.Prefix.EVENT, event.id),
                            title=event.title,
                            latitude=event.latitude if precise else round(event.latitude, 2),
                            longitude=event.longitude if precise else round(event.longitude, 2),
                            category=event.tags[0] if event.tags else None,
                            premium=required is not None or event.required_tier is not None,
                            start_time=event.start_time,
                        )
                    )
            if "places" in layers:
                pquery = select(Place).where(
                    Place.deleted_at.is_(None),
                    Place.hidden_at.is_(None),
                    func.point(Place.longitude, Place.latitude).op("<@")(box),
                )
                if category:
                    pquery = pquery.where(Place.category == category.strip().lower())
                if premium_only:
                    pquery = pquery.where(Place.is_premium.is_(True))
                places = list(await session.scalars(pquery.order_by(Place.id).limit(MAP_PIN_LIMIT + 1)))
                truncated |= len(places) > MAP_PIN_LIMIT
                pins.extend(
                    MapPin(
                        layer="places",
                        id=ids.encode(ids.Prefix.PLACE, p.id),
                        title=p.name,
                        latitude=p.latitude,
                        longitude=p.longitude,
                        category=p.category,
                        premium=p.is_premium,
                        start_time=None,
                    )
                    for p in places[:MAP_PIN_LIMIT]
                )
        return MapView(pins=pins, truncated=truncated)


def _require_moderator(actor: AccessClaims) -> None:
    if not MODERATOR_ROLES & set(actor.roles):
        raise PermissionDenied("only moderators can do this", code="moderator_required")


def _require_curator(actor: AccessClaims) -> None:
    if not CURATOR_ROLES & set(actor.roles):
        raise PermissionDenied("only curators can do this", code="curator_required")


async def _live_place(session: AsyncSession, place_id: uuid.UUID, *, lock: bool = False) -> Place:
    query = select(Place).where(Place.id == place_id, Place.deleted_at.is_(None), Place.hidden_at.is_(None))
    place = await session.scalar(query.with_for_update() if lock else query)
    if place is None:
        raise NotFound("no such place", code="place_not_found")
    return place


async def _live_list(session: AsyncSession, list_id: uuid.UUID, *, lock: bool = False) -> CuratedList:
    query = select(CuratedList).where(
        CuratedList.id == list_id, CuratedList.deleted_at.is_(None), CuratedList.hidden_at.is_(None)
    )
    lst = await session.scalar(query.with_for_update() if lock else query)
    if lst is None:
        raise NotFound("no such list", code="list_not_found")
    return lst


async def _write_items(session: AsyncSession, list_id: uuid.UUID, items: Sequence[ListItemIn]) -> None:
    """Insert ``items`` in order; every place must exist and appear once."""
    place_ids = [_decode_body_id(ids.Prefix.PLACE, f"items[{i}].place_id", it.place_id) for i, it in enumerate(items)]
    if len(set(place_ids)) != len(place_ids):
        raise InvalidInput(errors=[FieldError("items", "a place may appear once per list")])
    if place_ids:
        found = set(
            await session.scalars(
                select(Place.id).where(Place.id.in_(place_ids), Place.deleted_at.is_(None), Place.hidden_at.is_(None))
            )
        )
        missing = [i for i, pid in enumerate(place_ids) if pid not in found]
        if missing:
            raise InvalidInput(
                code="unknown_place",
                errors=[FieldError(f"items[{i}].place_id", "no such place") for i in missing],
            )
    for position, (place_id, item) in enumerate(zip(place_ids, items, strict=True)):
        session.add(CuratedListItem(list_id=list_id, place_id=place_id, position=position, note=item.note))
    await session.flush()


async def _list_out(session: AsyncSession, lst: CuratedList, media_service: MediaService | None = None) -> ListOut:
    rows = (
        await session.execute(
            select(CuratedListItem, Place)
            .join(Place, Place.id == CuratedListItem.place_id)
            .where(CuratedListItem.list_id == lst.id, Place.deleted_at.is_(None), Place.hidden_at.is_(None))
            .order_by(CuratedListItem.position)
        )
    ).all()
    media = await _media_views(media_service, [p for _, p in rows])
    return ListOut(
        id=ids.encode(ids.Prefix.LIST, lst.id),
        title=lst.title,
        description=lst.description,
        city=lst.city,
        curator_id=ids.encode(ids.Prefix.USER, lst.curator_id),
        items=[ListItemOut(position=i.position, note=i.note, place=_place_out(p, media)) for i, p in rows],
        created_at=lst.created_at,
    )
