"""The recommendation engine: load one user's signals and candidates, score them, store the ranked rows.

A refresh replaces the user's rows in one transaction under a per-user advisory lock, so two
refreshes never interleave and running one twice leaves the same rows (idempotent). A
statement timeout bounds each refresh in time.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from shared.domain.chat.models import Chat, ChatMessage, ChatParticipant, ChatType
from shared.domain.clubs.models import Club, ClubMembership, MembershipStatus, Privacy
from shared.domain.discovery import scoring
from shared.domain.discovery.icebreakers import FALLBACK_PROMPT, active_prompts, prompt_of_day, topic_prompts
from shared.domain.discovery.models import (
    RecKind,
    Recommendation,
    RecommendationDismissal,
    RecommendationRun,
)
from shared.domain.events.models import Event, EventStatus, Rsvp, RsvpStatus, Visibility
from shared.domain.posts.models import Comment, Post, PostReaction
from shared.domain.social.models import Block, FriendRequest, FriendRequestStatus, Friendship, Vouch
from shared.domain.users.models import AccountStatus, User
from shared.ids import uuid7

KEEP_PER_KIND = 100
"""How many items of each kind a refresh stores; the API pages through these."""
EVENT_HORIZON = timedelta(days=90)
CANDIDATE_CAP = 600
REFRESH_STATEMENT_TIMEOUT_MS = 15_000
# RSVPs that say "I am going or want to": they count as attending for friends and co-attendance.
ATTENDING = (
    RsvpStatus.CONFIRMED.value,
    RsvpStatus.WAITLISTED.value,
    RsvpStatus.PENDING_APPROVAL.value,
    RsvpStatus.MAYBE.value,
)
# Tag affinity per signal: checking in at an event says more than an RSVP; writing about a tag more than liking.
AFFINITY_CHECKED_IN = 1.0
AFFINITY_RSVP = 0.4
AFFINITY_POSTED = 0.5
AFFINITY_ENGAGED = 0.3
# How many recent rows of each signal feed the affinity (bounds the refresh).
AFFINITY_ROWS = 300


@dataclass(frozen=True, slots=True)
class SocialSignals:
    """Who the viewer talks to and engages with, outside the friend graph."""

    # Other user -> messages they sent in a direct or group chat where the viewer wrote too.
    messages: dict[uuid.UUID, int]
    # Other user -> likes and comments between the two on each other's posts.
    engagement: dict[uuid.UUID, int]

    def contacts(self) -> set[uuid.UUID]:
        """Everyone with at least one message or engagement."""
        return set(self.messages) | set(self.engagement)


@dataclass(frozen=True, slots=True)
class Computed:
    """One user's ranked recommendations of every kind."""

    events: list[scoring.Scored]
    people: list[scoring.Scored]
    clubs: list[scoring.Scored]


def _lock_key(user_id: uuid.UUID) -> int:
    # A signed 64-bit key from the UUID; collisions only serialise two users' refreshes.
    return int.from_bytes(user_id.bytes[:8], "big", signed=True)


async def friends_of(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    """The user's friends."""
    rows = await session.execute(
        select(Friendship.user_low_id, Friendship.user_high_id).where(
            or_(Friendship.user_low_id == user_id, Friendship.user_high_id == user_id)
        )
    )
    return {high if low == user_id else low for low, high in rows.all()}


async def load_viewer(session: AsyncSession, user: User) -> scoring.Viewer:
    """The user's interests, city, tier, clubs and usual whereabouts."""
    clubs = await session.execute(
        select(Club.id, Club.name)
        .join(ClubMembership, ClubMembership.club_id == Club.id)
        .where(
            ClubMembership.user_id == user.id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
            Club.deleted_at.is_(None),
        )
    )
    home = (
        await session.execute(
            select(func.avg(Event.latitude), func.avg(Event.longitude))
            .join(Rsvp, Rsvp.event_id == Event.id)
            .where(Rsvp.user_id == user.id, Rsvp.status.in_(ATTENDING))
        )
    ).one()
    return scoring.Viewer(
        user_id=user.id,
        city=user.city,
        interests=frozenset(user.interests),
        premium_tier=user.premium_tier,
        home=(float(home[0]), float(home[1])) if home[0] is not None else None,
        clubs=dict(clubs.all()),
        tag_affinity=await tag_affinity(session, user.id),
    )


async def tag_affinity(session: AsyncSession, user_id: uuid.UUID) -> dict[str, float]:
    """Tag -> weight from the user's recent check-ins and RSVPs, posts, and likes/comments on tagged posts."""
    weights: defaultdict[str, float] = defaultdict(float)
    rsvps = await session.execute(
        select(Event.tags, Rsvp.checked_in_at.is_not(None))
        .join(Rsvp, Rsvp.event_id == Event.id)
        .where(Rsvp.user_id == user_id, or_(Rsvp.checked_in_at.is_not(None), Rsvp.status.in_(ATTENDING)))
        .order_by(Rsvp.id.desc())
        .limit(AFFINITY_ROWS)
    )
    for tags, checked_in in rsvps.all():
        for t in tags:
            weights[t.lower()] += AFFINITY_CHECKED_IN if checked_in else AFFINITY_RSVP
    posted = await session.scalars(
        select(Post.tags)
        .where(Post.author_id == user_id, Post.deleted_at.is_(None))
        .order_by(Post.id.desc())
        .limit(AFFINITY_ROWS)
    )
    engaged = await session.scalars(
        select(Post.tags)
        .where(
            Post.deleted_at.is_(None),
            Post.author_id != user_id,
            or_(
                exists().where(PostReaction.post_id == Post.id, PostReaction.user_id == user_id),
                exists().where(Comment.post_id == Post.id, Comment.author_id == user_id, Comment.deleted_at.is_(None)),
            ),
        )
        .order_by(Post.id.desc())
        .limit(AFFINITY_ROWS)
    )
    for weight, rows in ((AFFINITY_POSTED, posted), (AFFINITY_ENGAGED, engaged)):
        for tags in rows:
            for t in tags:
                weights[t.lower()] += weight
    return dict(weights)


async def social_signals(session: AsyncSession, user_id: uuid.UUID) -> SocialSignals:
    """Message partners (direct/group chats where both wrote) and post engagement in both directions."""
    my_chats = (
        select(ChatParticipant.chat_id)
        .join(Chat, Chat.id == ChatParticipant.chat_id)
        .where(ChatParticipant.user_id == user_id, Chat.type.in_([ChatType.DIRECT.value, ChatType.GROUP.value]))
    )
    # A chat counts only when the viewer wrote in it too: being messaged is not an exchange.
    i_wrote = select(ChatMessage.chat_id).where(ChatMessage.sender_id == user_id, ChatMessage.chat_id.in_(my_chats))
    rows = await session.execute(
        select(ChatMessage.sender_id, func.count())
        .where(
            ChatMessage.chat_id.in_(i_wrote),
            ChatMessage.sender_id != user_id,
            ChatMessage.deleted_at.is_(None),
        )
        .group_by(ChatMessage.sender_id)
        .order_by(func.count().desc())
        .limit(CANDIDATE_CAP)
    )
    messages = {sender: int(n) for sender, n in rows.all()}
    engagement: Counter[uuid.UUID] = Counter()
    live = Post.deleted_at.is_(None)
    for query in (
        # Mine on theirs, then theirs on mine.
        select(Post.author_id, func.count())
        .join(PostReaction, PostReaction.post_id == Post.id)
        .where(PostReaction.user_id == user_id, live)
        .group_by(Post.author_id),
        select(Post.author_id, func.count())
        .join(Comment, Comment.post_id == Post.id)
        .where(Comment.author_id == user_id, Comment.deleted_at.is_(None), live)
        .group_by(Post.author_id),
        select(PostReaction.user_id, func.count())
        .join(Post, PostReaction.post_id == Post.id)
        .where(Post.author_id == user_id, live)
        .group_by(PostReaction.user_id),
        select(Comment.author_id, func.count())
        .join(Post, Comment.post_id == Post.id)
        .where(Post.author_id == user_id, Comment.deleted_at.is_(None), live)
        .group_by(Comment.author_id),
    ):
        for other, n in (await session.execute(query.limit(CANDIDATE_CAP))).all():
            if other != user_id:
                engagement[other] += int(n)
    return SocialSignals(messages=messages, engagement=dict(engagement))


async def _dismissed(session: AsyncSession, user_id: uuid.UUID, kind: RecKind) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(RecommendationDismissal.target_id).where(
            RecommendationDismissal.user_id == user_id, RecommendationDismissal.kind == kind.value
        )
    )
    return set(rows)


async def load_event_candidates(
    session: AsyncSession,
    viewer: scoring.Viewer,
    friends: set[uuid.UUID],
    now: datetime,
    contacts: set[uuid.UUID] | None = None,
) -> list[scoring.EventCandidate]:
    """Upcoming, visible, not full events from the user's city, clubs, friends, contacts, interests or affinities."""
    attendees = (
        select(Rsvp.event_id, func.count().label("n"))
        .where(Rsvp.status == RsvpStatus.CONFIRMED.value)
        .group_by(Rsvp.event_id)
        .subquery()
    )
    friend_rsvps = (
        select(Rsvp.event_id, func.count().label("n"))
        .where(Rsvp.user_id.in_(friends or {uuid.UUID(int=0)}), Rsvp.status.in_(ATTENDING))
        .group_by(Rsvp.event_id)
        .subquery()
    )
    contact_rsvps = (
        select(Rsvp.event_id, func.count().label("n"))
        .where(Rsvp.user_id.in_((contacts or set()) - friends or {uuid.UUID(int=0)}), Rsvp.status.in_(ATTENDING))
        .group_by(Rsvp.event_id)
        .subquery()
    )
    mine = select(Rsvp.event_id).where(Rsvp.user_id == viewer.user_id)
    my_clubs = list(viewer.clubs) or [uuid.UUID(int=0)]
    sources: list[ColumnElement[bool]] = [
        Event.club_id.in_(my_clubs),
        friend_rsvps.c.n.is_not(None),
        contact_rsvps.c.n.is_not(None),
    ]
    if viewer.city:
        sources.append(func.lower(Event.city) == viewer.city.strip().lower())
    liked_tags = viewer.interests | {t for t, w in viewer.tag_affinity.items() if w >= AFFINITY_RSVP}
    if liked_tags:
        sources.append(Event.tags.overlap(sorted(liked_tags)))
    query = (
        select(Event, Club.name, Club.required_tier, attendees.c.n, friend_rsvps.c.n, contact_rsvps.c.n)
        .outerjoin(Club, Club.id == Event.club_id)
        .outerjoin(attendees, attendees.c.event_id == Event.id)
        .outerjoin(friend_rsvps, friend_rsvps.c.event_id == Event.id)
        .outerjoin(contact_rsvps, contact_rsvps.c.event_id == Event.id)
        .where(
            Event.status == EventStatus.PUBLISHED.value,
            Event.start_time > now,
            Event.start_time < now + EVENT_HORIZON,
            # Full events are left out; a cancelled seat brings one back on the next refresh.
            or_(Event.capacity.is_(None), Event.seats_taken < Event.capacity),
            or_(
                Event.visibility == Visibility.PUBLIC.value,
                and_(
                    Event.visibility == Visibility.CLUB.value,
                    Event.club_id.in_(list(viewer.clubs) or [uuid.UUID(int=0)]),
                ),
            ),
            Event.organizer_id != viewer.user_id,
            Event.id.not_in(mine),
            ~exists().where(
                or_(
                    and_(Block.blocker_id == viewer.user_id, Block.blocked_id == Event.organizer_id),
                    and_(Block.blocker_id == Event.organizer_id, Block.blocked_id == viewer.user_id),
                )
            ),
            or_(*sources),
        )
        .order_by(func.coalesce(friend_rsvps.c.n, 0).desc(), func.coalesce(attendees.c.n, 0).desc(), Event.start_time)
        .limit(CANDIDATE_CAP)
    )
    out = []
    for event, club_name, club_tier, attending, friends_going, contacts_going in (await session.execute(query)).all():
        out.append(
            scoring.EventCandidate(
                id=event.id,
                title=event.title,
                start_time=event.start_time,
                city=event.city,
                latitude=event.latitude,
                longitude=event.longitude,
                tags=frozenset(event.tags),
                club_id=event.club_id,
                club_name=club_name,
                attendee_count=int(attending or 0),
                published_at=event.published_at,
                friends_attending=int(friends_going or 0),
                required_tier=scoring.stricter_tier(event.required_tier, club_tier),
                contacts_attending=int(contacts_going or 0),
            )
        )
    return out


async def excluded_people(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    """People never to suggest: friends, blocks either way, open requests, declined requests."""
    out = await friends_of(session, user_id)
    blocks = await session.execute(
        select(Block.blocker_id, Block.blocked_id).where(or_(Block.blocker_id == user_id, Block.blocked_id == user_id))
    )
    for blocker, blocked in blocks.all():
        out.add(blocked if blocker == user_id else blocker)
    requests = await session.execute(
        select(FriendRequest.sender_id, FriendRequest.recipient_id).where(
            or_(FriendRequest.sender_id == user_id, FriendRequest.recipient_id == user_id),
            FriendRequest.status.in_([FriendRequestStatus.PENDING.value, FriendRequestStatus.DECLINED.value]),
        )
    )
    for sender, recipient in requests.all():
        out.add(recipient if sender == user_id else sender)
    out |= await _dismissed(session, user_id, RecKind.PERSON)
    out.add(user_id)
    return out


async def load_person_candidates(
    session: AsyncSession,
    viewer: scoring.Viewer,
    friends: set[uuid.UUID],
    excluded: set[uuid.UUID],
    signals: SocialSignals | None = None,
) -> list[scoring.PersonCandidate]:
    """People sharing clubs, friends, events, chats, post engagement, the city or interests with the user."""
    signals = signals or SocialSignals(messages={}, engagement={})
    none = [uuid.UUID(int=0)]
    fof: Counter[uuid.UUID] = Counter()
    if friends:
        rows = await session.execute(
            select(Friendship.user_low_id, Friendship.user_high_id).where(
                or_(Friendship.user_low_id.in_(friends), Friendship.user_high_id.in_(friends))
            )
        )
        for low, high in rows.all():
            for a, b in ((low, high), (high, low)):
                if a in friends and b not in excluded:
                    fof[b] += 1
    shared: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    if viewer.clubs:
        rows2 = await session.execute(
            select(ClubMembership.user_id, ClubMembership.club_id)
            .where(
                ClubMembership.club_id.in_(list(viewer.clubs)),
                ClubMembership.status == MembershipStatus.ACTIVE.value,
            )
            .limit(5000)
        )
        for other, club_id in rows2.all():
            if other not in excluded:
                shared[other].append((club_id, viewer.clubs[club_id]))
    mine = select(Rsvp.event_id).where(Rsvp.user_id == viewer.user_id, Rsvp.status.in_(ATTENDING))
    co_rows = await session.execute(
        select(Rsvp.user_id, func.count())
        .where(Rsvp.event_id.in_(mine), Rsvp.status.in_(ATTENDING))
        .group_by(Rsvp.user_id)
        .order_by(func.count().desc())
        .limit(CANDIDATE_CAP)
    )
    co = {u: int(n) for u, n in co_rows.all() if u not in excluded}
    my_check_ins = select(Rsvp.event_id).where(Rsvp.user_id == viewer.user_id, Rsvp.checked_in_at.is_not(None))
    checked_rows = await session.execute(
        select(Rsvp.user_id, func.count())
        .where(Rsvp.event_id.in_(my_check_ins), Rsvp.checked_in_at.is_not(None))
        .group_by(Rsvp.user_id)
        .limit(CANDIDATE_CAP)
    )
    co_checked = {u: int(n) for u, n in checked_rows.all() if u not in excluded}
    near_conditions = []
    if viewer.city:
        near_conditions.append(func.lower(User.city) == viewer.city.strip().lower())
    if viewer.interests:
        near_conditions.append(User.interests.overlap(sorted(viewer.interests)))
    near: set[uuid.UUID] = set()
    if near_conditions:
        near = set(
            await session.scalars(
                select(User.id)
                .where(or_(*near_conditions), User.id.not_in(list(excluded) or none))
                .order_by(User.last_active_at.desc().nulls_last(), User.id)
                .limit(CANDIDATE_CAP)
            )
        )
    ids = (set(fof) | set(shared) | set(co) | set(co_checked) | signals.contacts() | near) - excluded
    if not ids:
        return []
    vouched = set(
        await session.scalars(
            select(Vouch.vouchee_id).where(
                Vouch.revoked_at.is_(None),
                Vouch.vouchee_id.in_(ids),
                Vouch.voucher_id.in_(friends | {viewer.user_id}),
            )
        )
    )
    users = await session.scalars(select(User).where(User.id.in_(ids), User.status != AccountStatus.SUSPENDED.value))
    return [
        scoring.PersonCandidate(
            id=u.id,
            display_name=u.display_name,
            city=u.city,
            interests=frozenset(u.interests),
            shared_clubs=sorted(shared.get(u.id, []), key=lambda c: c[1]),
            mutual_friends=fof.get(u.id, 0),
            co_attended=co.get(u.id, 0),
            vouched=u.id in vouched,
            last_active_at=u.last_active_at,
            co_checked_in=co_checked.get(u.id, 0),
            messages=signals.messages.get(u.id, 0),
            engagement=signals.engagement.get(u.id, 0),
        )
        for u in users
    ]


async def load_club_candidates(
    session: AsyncSession, viewer: scoring.Viewer, friends: set[uuid.UUID], now: datetime
) -> list[scoring.ClubCandidate]:
    """Findable clubs the user has no membership row in (member, pending or banned)."""
    none = [uuid.UUID(int=0)]
    in_club = select(ClubMembership.club_id).where(ClubMembership.user_id == viewer.user_id)
    friend_members = (
        select(ClubMembership.club_id, func.count().label("n"))
        .where(
            ClubMembership.user_id.in_(list(friends) or none), ClubMembership.status == MembershipStatus.ACTIVE.value
        )
        .group_by(ClubMembership.club_id)
        .subquery()
    )
    upcoming = (
        select(Event.club_id, func.count().label("n"))
        .where(Event.status == EventStatus.PUBLISHED.value, Event.start_time > now, Event.club_id.is_not(None))
        .group_by(Event.club_id)
        .subquery()
    )
    sources: list[ColumnElement[bool]] = [friend_members.c.n.is_not(None)]
    if viewer.city:
        sources.append(func.lower(Club.city) == viewer.city.strip().lower())
    if viewer.interests:
        sources.append(Club.tags.overlap(sorted(viewer.interests)))
    query = (
        select(Club, friend_members.c.n, upcoming.c.n)
        .outerjoin(friend_members, friend_members.c.club_id == Club.id)
        .outerjoin(upcoming, upcoming.c.club_id == Club.id)
        .where(
            Club.deleted_at.is_(None),
            Club.privacy_level != Privacy.SECRET.value,
            Club.id.not_in(in_club),
            Club.id.not_in(
                select(RecommendationDismissal.target_id).where(
                    RecommendationDismissal.user_id == viewer.user_id,
                    RecommendationDismissal.kind == RecKind.CLUB.value,
                )
            ),
            or_(*sources),
        )
        .order_by(Club.member_count.desc(), Club.id)
        .limit(CANDIDATE_CAP)
    )
    return [
        scoring.ClubCandidate(
            id=club.id,
            name=club.name,
            city=club.city,
            tags=frozenset(club.tags),
            member_count=club.member_count,
            friends_in_club=int(nf or 0),
            upcoming_events=int(nu or 0),
            required_tier=club.required_tier,
        )
        for club, nf, nu in (await session.execute(query)).all()
    ]


async def compute(session: AsyncSession, user: User, now: datetime) -> Computed:
    """Score every candidate of every kind for ``user`` and keep the best of each."""
    viewer = await load_viewer(session, user)
    friends = await friends_of(session, user.id)
    excluded = await excluded_people(session, user.id)
    signals = await social_signals(session, user.id)
    dismissed_events = await _dismissed(session, user.id, RecKind.EVENT)
    events = [
        scoring.score_event(viewer, e, now)
        for e in await load_event_candidates(session, viewer, friends, now, signals.contacts() - excluded)
        if e.id not in dismissed_events and scoring.event_allowed(viewer, e)
    ]
    prompts = await active_prompts(session)
    fallback = prompt_of_day(prompts, now.date())
    topics = topic_prompts(prompts)
    people = [
        scoring.score_person(viewer, p, now, topics, fallback.text if fallback else FALLBACK_PROMPT)
        for p in await load_person_candidates(session, viewer, friends, excluded, signals)
    ]
    clubs = [
        scoring.score_club(viewer, c)
        for c in await load_club_candidates(session, viewer, friends, now)
        if scoring.club_allowed(viewer, c)
    ]
    return Computed(
        events=scoring.top(events, KEEP_PER_KIND),
        people=scoring.top(people, KEEP_PER_KIND),
        clubs=scoring.top(clubs, KEEP_PER_KIND),
    )


async def refresh_user(session: AsyncSession, user_id: uuid.UUID, now: datetime, trigger: str) -> bool:
    """Recompute and replace ``user_id``'s recommendations in the caller's transaction; ``False`` if no such user.

    Serialised per user by an advisory lock; the same signals give the same rows, so a repeat is harmless.
    """
    started = time.perf_counter()
    await session.execute(text(f"SET LOCAL statement_timeout = {REFRESH_STATEMENT_TIMEOUT_MS}"))
    await session.execute(select(func.pg_advisory_xact_lock(_lock_key(user_id))))
    user = await session.get(User, user_id)
    if user is None or user.status == AccountStatus.SUSPENDED.value:
        return False
    result = await compute(session, user, now)
    run_id = uuid7()
    await session.execute(delete(Recommendation).where(Recommendation.user_id == user_id))
    # Runs are an audit trail of a week; older ones no longer own any row.
    await session.execute(
        delete(RecommendationRun).where(
            RecommendationRun.user_id == user_id, RecommendationRun.started_at < now - timedelta(days=7)
        )
    )
    session.add(
        RecommendationRun(
            id=run_id,
            user_id=user_id,
            trigger=trigger,
            started_at=now,
            finished_at=now,
            duration_ms=int((time.perf_counter() - started) * 1000),
            event_count=len(result.events),
            person_count=len(result.people),
            club_count=len(result.clubs),
        )
    )
    await session.flush()
    rows = [
        {
            "user_id": user_id,
            "kind": kind.value,
            "target_id": item.target_id,
            "score": item.score,
            "reason": item.reason[:160],
            "details": item.details,
            "run_id": run_id,
            "computed_at": now,
        }
        for kind, items in (
            (RecKind.EVENT, result.events),
            (RecKind.PERSON, result.people),
            (RecKind.CLUB, result.clubs),
        )
        for item in items
    ]
    if rows:
        await session.execute(insert(Recommendation), rows)
    return True


async def active_user_ids(session: AsyncSession, now: datetime, stale_after: timedelta, cap: int) -> list[uuid.UUID]:
    """Users active in the last 30 days whose recommendations are older than ``stale_after`` (or missing)."""
    last_run = (
        select(RecommendationRun.user_id, func.max(RecommendationRun.started_at).label("at"))
        .group_by(RecommendationRun.user_id)
        .subquery()
    )
    rows = await session.scalars(
        select(User.id)
        .outerjoin(last_run, last_run.c.user_id == User.id)
        .where(
            User.last_active_at >= now - timedelta(days=30),
            User.status != AccountStatus.SUSPENDED.value,
            or_(last_run.c.at.is_(None), last_run.c.at < now - stale_after),
        )
        .order_by(User.id)
        .limit(cap)
    )
    return list(rows)
