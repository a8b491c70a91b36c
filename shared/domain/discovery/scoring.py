"""Pure scoring: features in [0, 1] per candidate, a weighted score in [0, 1] and a reason from the strongest feature.

No I/O here: the engine (from the database) and the quality benchmark (from a synthetic community)
both feed these functions the same candidate shapes, so the benchmark measures this code.

Adding a feature (for example ``boost`` for sponsored events) is: a weight in the table, the
feature's value in ``*_features`` and a phrase in the reason function.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.domain.payments.tiers import TIER_RANK, tier_satisfies

EVENT_WEIGHTS: dict[str, float] = {
    "interest": 0.26,
    "friends": 0.24,
    "club": 0.16,
    "distance": 0.12,
    "time_fit": 0.08,
    "popularity": 0.08,
    "recency": 0.06,
    # A paid boost's share is added at read time while the boost is live (see ``boost_share``), so a
    # stored list never shows a boost before its window or after it.
    "boost": 0.15,
    # What the viewer did: tags of events they checked in at (more) or RSVPed to, and of posts they wrote,
    # liked or commented on.
    "affinity": 0.14,
    # People the viewer chats with or engages with (not friends) going to the event.
    "contacts": 0.12,
}
PERSON_WEIGHTS: dict[str, float] = {
    "interests": 0.24,
    "clubs": 0.18,
    "friends_of_friends": 0.18,
    "co_attended": 0.18,
    "city": 0.10,
    "vouch": 0.06,
    "activity": 0.06,
    # Messages exchanged in a direct or group chat the two share.
    "messages": 0.16,
    # Likes and comments between the two on each other's posts.
    "engagement": 0.10,
}
# An event both checked in at counts this many times an event both only RSVPed to.
CHECK_IN_WEIGHT = 2.0
CLUB_WEIGHTS: dict[str, float] = {
    "interest": 0.35,
    "friends": 0.25,
    "city": 0.20,
    "activity": 0.10,
    "size": 0.10,
}
# Below this a feature is too weak to be the stated reason; the generic phrase is used instead.
MIN_REASON_CONTRIBUTION = 0.01


@dataclass(frozen=True, slots=True)
class Viewer:
    """The user recommendations are for, as scoring sees them."""

    user_id: uuid.UUID
    city: str | None
    interests: frozenset[str]
    premium_tier: str | None
    # Where the user usually goes (centroid of their events), else None.
    home: tuple[float, float] | None = None
    clubs: Mapping[uuid.UUID, str] = field(default_factory=dict)
    # Tag -> weight from the viewer's check-ins, RSVPs, posts and reactions (see the engine).
    tag_affinity: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventCandidate:
    """An upcoming event and the signals that make it relevant."""

    id: uuid.UUID
    title: str
    start_time: datetime
    city: str | None
    latitude: float
    longitude: float
    tags: frozenset[str]
    club_id: uuid.UUID | None
    club_name: str | None
    attendee_count: int
    published_at: datetime | None
    friends_attending: int
    # The tier needed to attend: today the club's required tier; an event-level tier plugs in here.
    required_tier: str | None = None
    # 1.0 while a paid boost is active; see EVENT_WEIGHTS.
    boost: float = 0.0
    # People the viewer messages or engages with (not friends) who are going.
    contacts_attending: int = 0


@dataclass(frozen=True, slots=True)
class PersonCandidate:
    """Another user and what they share with the viewer."""

    id: uuid.UUID
    display_name: str
    city: str | None
    interests: frozenset[str]
    shared_clubs: Sequence[tuple[uuid.UUID, str]]
    mutual_friends: int
    co_attended: int
    vouched: bool
    last_active_at: datetime | None
    # Events both checked in at (a subset of ``co_attended``), messages exchanged, likes/comments between them.
    co_checked_in: int = 0
    messages: int = 0
    engagement: int = 0


@dataclass(frozen=True, slots=True)
class ClubCandidate:
    """A club the viewer is not in."""

    id: uuid.UUID
    name: str
    city: str | None
    tags: frozenset[str]
    member_count: int
    friends_in_club: int
    upcoming_events: int
    required_tier: str | None


@dataclass(frozen=True, slots=True)
class Scored:
    """One ranked item: its score in [0, 1], the human reason and kind-specific details."""

    target_id: uuid.UUID
    score: float
    reason: str
    details: dict[str, Any]


def saturate(count: float, scale: float) -> float:
    """0 at 0, rising to 1: one ``scale`` of count gives 0.63."""
    return 1.0 - math.exp(-max(count, 0.0) / scale)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lng) points."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def _same_city(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _weighted(features: Mapping[str, float], weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """The score in [0, 1] and each feature's contribution to it."""
    total = sum(weights.values())
    contributions = {name: weights[name] * min(max(features.get(name, 0.0), 0.0), 1.0) / total for name in weights}
    return min(max(sum(contributions.values()), 0.0), 1.0), contributions


def _strongest(contributions: Mapping[str, float]) -> str | None:
    # Ties go to the name earliest in the weight table, so reasons are stable.
    best = max(contributions, key=lambda name: contributions[name], default=None)
    if best is None or contributions[best] < MIN_REASON_CONTRIBUTION:
        return None
    return best


def boost_share() -> float:
    """What a live boost adds to an event's stored (boost-free) score: its weight's share of the total."""
    return EVENT_WEIGHTS["boost"] / sum(EVENT_WEIGHTS.values())


def stricter_tier(a: str | None, b: str | None) -> str | None:
    """The higher of two required tiers (an event's own and its club's)."""
    if a is None or b is None:
        return a or b
    return a if TIER_RANK.get(a, 0) >= TIER_RANK.get(b, 0) else b


def event_allowed(viewer: Viewer, event: EventCandidate) -> bool:
    """Premium gating: an event the viewer's tier cannot attend is not recommended."""
    return tier_satisfies(viewer.premium_tier, event.required_tier)


def event_features(viewer: Viewer, event: EventCandidate, now: datetime) -> dict[str, float]:
    """Each event feature in [0, 1]."""
    matched = viewer.interests & event.tags
    if viewer.home is not None:
        distance = math.exp(-distance_km(viewer.home, (event.latitude, event.longitude)) / 15.0)
    elif viewer.city is not None:
        distance = 1.0 if _same_city(viewer.city, event.city) else 0.0
    else:
        distance = 0.3
    days_ahead = max((event.start_time - now).total_seconds() / 86400.0, 0.0)
    # Most people plan a week or two ahead; far-off events are still worth a little.
    time_fit = 1.0 if days_ahead <= 10 else max(0.15, math.exp(-(days_ahead - 10) / 20.0))
    age_days = (now - event.published_at).total_seconds() / 86400.0 if event.published_at else 30.0
    return {
        "interest": saturate(len(matched), 1.0) if matched else 0.0,
        "friends": saturate(event.friends_attending, 0.5),
        "club": 1.0 if event.club_id is not None and event.club_id in viewer.clubs else 0.0,
        "distance": distance,
        "time_fit": time_fit,
        "popularity": saturate(event.attendee_count, 15.0),
        "recency": math.exp(-max(age_days, 0.0) / 7.0),
        "boost": event.boost,
        "affinity": saturate(sum(viewer.tag_affinity.get(t, 0.0) for t in event.tags), 1.5),
        "contacts": saturate(event.contacts_attending, 0.7),
    }


def event_reason(name: str | None, viewer: Viewer, event: EventCandidate) -> str:
    """The sentence for the strongest event feature."""
    city = event.city or viewer.city
    match name:
        case "friends":
            return "Friends attending"
        case "interest":
            interest = sorted(viewer.interests & event.tags)[0]
            return f"Matches your interest in {interest}"
        case "club":
            return f"From {event.club_name}" if event.club_name else "From one of your clubs"
        case "popularity":
            return f"Popular in {city}" if city else "Popular"
        case "distance":
            return f"Near you in {city}" if city else "Near you"
        case "time_fit":
            return "Happening soon"
        case "recency":
            return "Newly announced"
        case "boost":
            return "Sponsored"
        case "affinity":
            affinity = viewer.tag_affinity
            liked = max(event.tags & affinity.keys(), key=lambda t: (affinity[t], t), default=None)
            return f"Based on your {liked} activity" if liked else "Based on your activity"
        case "contacts":
            return "People you talk to are going"
    return f"Upcoming in {city}" if city else "Upcoming"


def score_event(viewer: Viewer, event: EventCandidate, now: datetime) -> Scored:
    """An event's score and reason for ``viewer``."""
    score, contributions = _weighted(event_features(viewer, event, now), EVENT_WEIGHTS)
    return Scored(
        target_id=event.id,
        score=round(score, 6),
        reason=event_reason(_strongest(contributions), viewer, event),
        details={"features": {k: round(v, 4) for k, v in contributions.items()}},
    )


def person_features(viewer: Viewer, person: PersonCandidate, now: datetime) -> dict[str, float]:
    """Each person feature in [0, 1]."""
    shared = viewer.interests & person.interests
    overlap = len(shared) / math.sqrt(max(len(viewer.interests), 1) * max(len(person.interests), 1))
    if person.last_active_at is None:
        activity = 0.2
    else:
        activity = math.exp(-max((now - person.last_active_at).total_seconds(), 0.0) / (86400.0 * 14))
    return {
        "interests": min(overlap, 1.0),
        "clubs": saturate(len(person.shared_clubs), 1.0),
        "friends_of_friends": saturate(person.mutual_friends, 1.5),
        # Attending together counts more when both actually checked in.
        "co_attended": saturate(person.co_attended + (CHECK_IN_WEIGHT - 1.0) * person.co_checked_in, 1.0),
        "city": 1.0 if _same_city(viewer.city, person.city) else 0.0,
        "vouch": 1.0 if person.vouched else 0.0,
        "activity": activity,
        "messages": saturate(person.messages, 4.0),
        "engagement": saturate(person.engagement, 2.0),
    }


def icebreaker_for(viewer: Viewer, person: PersonCandidate, topic_prompts: Mapping[str, str], fallback: str) -> str:
    """A prompt built from what the two share: an interest, then a club, then the day's prompt."""
    shared = sorted(viewer.interests & person.interests)
    for interest in shared:
        if interest in topic_prompts:
            return f"You both like {interest}. {topic_prompts[interest]}"
    if shared:
        return f"Ask {person.display_name} what got them into {shared[0]}"
    if person.shared_clubs:
        return f"You're both in {person.shared_clubs[0][1]}: ask about their favourite meetup so far"
    return fallback


def score_person(
    viewer: Viewer, person: PersonCandidate, now: datetime, topic_prompts: Mapping[str, str], fallback_prompt: str
) -> Scored:
    """A person's compatibility with ``viewer``, what they share and an icebreaker."""
    score, contributions = _weighted(person_features(viewer, person, now), PERSON_WEIGHTS)
    strongest = _strongest(contributions)
    reasons = {
        "interests": "Shares your interests",
        "clubs": "In your clubs",
        "friends_of_friends": "Friend of your friends",
        "co_attended": "Goes to the same events",
        "city": f"Also in {person.city}",
        "vouch": "Vouched for in your circle",
        "activity": "Active lately",
        "messages": "You've been chatting",
        "engagement": "You engage with each other's posts",
    }
    return Scored(
        target_id=person.id,
        score=round(score, 6),
        reason=reasons.get(strongest or "", "Someone new"),
        details={
            "mutual_interests": sorted(viewer.interests & person.interests),
            "shared_clubs": [name for _, name in person.shared_clubs],
            "icebreaker_prompt": icebreaker_for(viewer, person, topic_prompts, fallback_prompt),
        },
    )


def club_allowed(viewer: Viewer, club: ClubCandidate) -> bool:
    """Premium gating for clubs: one the viewer's tier cannot join is not recommended."""
    return tier_satisfies(viewer.premium_tier, club.required_tier)


def score_club(viewer: Viewer, club: ClubCandidate) -> Scored:
    """A club's score and reason for ``viewer``."""
    matched = viewer.interests & club.tags
    features = {
        "interest": saturate(len(matched), 1.0) if matched else 0.0,
        "friends": saturate(club.friends_in_club, 1.0),
        "city": 1.0 if _same_city(viewer.city, club.city) else 0.0,
        "activity": saturate(club.upcoming_events, 2.0),
        "size": min(math.log1p(club.member_count) / math.log1p(500), 1.0),
    }
    score, contributions = _weighted(features, CLUB_WEIGHTS)
    match _strongest(contributions):
        case "interest":
            reason = f"Matches your interest in {sorted(matched)[0]}"
        case "friends":
            reason = "Friends are members"
        case "city":
            reason = f"In {club.city}"
        case "activity":
            reason = "Active with upcoming events"
        case "size":
            reason = "Popular club"
        case _:
            reason = "A club you might like"
    return Scored(target_id=club.id, score=round(score, 6), reason=reason, details={"name": club.name})


def top(scored: Sequence[Scored], limit: int) -> list[Scored]:
    """The best ``limit`` items, by score then id so equal scores rank the same way every time."""
    return sorted(scored, key=lambda s: (-s.score, s.target_id))[:limit]
