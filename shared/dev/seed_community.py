"""The demo community's clubs, events, friendships, RSVPs, places and a must-visit list, then fresh
recommendations for every demo user, so ``tribe up --seed`` shows discovery working. Idempotent."""

from __future__ import annotations

import uuid
from datetime import timedelta

from rich.console import Console
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import utcnow
from shared.config import Settings
from shared.db.session import create_engine, create_session_factory
from shared.domain.clubs.models import Club, ClubMembership
from shared.domain.discovery.engine import refresh_user
from shared.domain.discovery.models import CuratedList, CuratedListItem, Place, RunTrigger
from shared.domain.events.models import Event, Rsvp
from shared.domain.social.models import Friendship
from shared.domain.users.models import User

# (slug, name, owner email, city, tags, member emails)
CLUBS = (
    ("austin-adventurers", "Austin Adventurers", "alex", "Austin", ["hiking", "outdoors"], ["jordan"]),
    ("austin-board-gamers", "Austin Board Gamers", "sam", "Austin", ["board games", "coffee"], ["lena"]),
    ("berlin-boulderers", "Berlin Boulderers", "mia", "Berlin", ["climbing"], ["noah"]),
)
# (slug, title, organizer, club slug or None, city, lat, lng, tags, days ahead, attendee emails)
EVENTS: tuple[tuple[str, str, str, str | None, str, float, float, list[str], int, list[str]], ...] = (
    (
        "demo-sunrise-hike",
        "Barton Creek Sunrise Hike",
        "alex",
        "austin-adventurers",
        "Austin",
        30.2648,
        -97.7961,
        ["hiking", "outdoors"],
        3,
        ["jordan"],
    ),
    (
        "demo-games-night",
        "Thursday Games Night",
        "sam",
        "austin-board-gamers",
        "Austin",
        30.2672,
        -97.7431,
        ["board games"],
        5,
        ["lena"],
    ),
    (
        "demo-live-music",
        "Live Music on Sixth Street",
        "alex",
        None,
        "Austin",
        30.2670,
        -97.7390,
        ["live music"],
        8,
        ["priya"],
    ),
    ("demo-coffee-cupping", "Coffee Cupping Morning", "sam", None, "Austin", 30.2500, -97.7500, ["coffee"], 2, []),
    (
        "demo-photo-walk",
        "Golden Hour Photo Walk",
        "alex",
        None,
        "Austin",
        30.2711,
        -97.7437,
        ["photography", "outdoors"],
        6,
        ["alex"],
    ),
    (
        "demo-bouldering",
        "Evening Bouldering Session",
        "mia",
        "berlin-boulderers",
        "Berlin",
        52.4930,
        13.4210,
        ["climbing"],
        4,
        ["noah"],
    ),
    ("demo-techno", "Kreuzberg Techno Night", "mia", None, "Berlin", 52.4990, 13.4030, ["techno"], 9, []),
)
FRIENDS = (("alex", "jordan"), ("alex", "priya"), ("sam", "lena"), ("mia", "noah"), ("jordan", "lena"))
# (name, category, city, lat, lng, premium, description)
PLACES = (
    ("Mount Bonnell", "viewpoint", "Austin", 30.3210, -97.7735, False, "The classic sunset view over Lake Austin."),
    ("Barton Springs Pool", "swimming", "Austin", 30.2640, -97.7713, False, "Spring-fed, 20 °C all year."),
    ("Epoch Coffee", "cafe", "Austin", 30.3180, -97.7240, False, "Open late; good for board games."),
    ("Skyline Rooftop Lounge", "bar", "Austin", 30.2660, -97.7420, True, "Members' rooftop (Plus)."),
    ("Tempelhofer Feld", "park", "Berlin", 52.4730, 13.4050, False, "A former airport runway, now a park."),
)
LIST_TITLE = "Austin must-visits"


def _email(handle: str) -> str:
    return f"{handle}@demo.tribe.dev"


async def seed_community(settings: Settings, console: Console) -> None:
    """Create what is missing of the demo community and refresh the demo users' recommendations."""
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin() as session:
            users = dict(
                (await session.execute(select(User.email, User.id).where(User.email.like("%@demo.tribe.dev")))).all()
            )
            people = {email.split("@")[0]: uid for email, uid in users.items()}
            clubs = await _clubs(session, people)
            await _events(session, people, clubs)
            for a, b in FRIENDS:
                low, high = sorted([people[a], people[b]])
                await session.execute(
                    insert(Friendship)
                    .values(user_low_id=low, user_high_id=high, created_at=utcnow())
                    .on_conflict_do_nothing()
                )
            await _places(session, people["lena"])
        now = utcnow()
        for uid in people.values():
            async with sessions.begin() as session:
                await refresh_user(session, uid, now, RunTrigger.COLD_START.value)
    finally:
        await engine.dispose()
    console.print(
        f"  demo community: {len(CLUBS)} clubs, {len(EVENTS)} events, {len(PLACES)} places, recommendations ready"
    )


async def _clubs(session: AsyncSession, people: dict[str, uuid.UUID]) -> dict[str, uuid.UUID]:
    out = {}
    for slug, name, owner, city, tags, members in CLUBS:
        club_id = await session.scalar(select(Club.id).where(Club.slug == slug))
        if club_id is None:
            club_id = uuid.uuid4()
            session.add(
                Club(
                    id=club_id,
                    kind="club",
                    name=name,
                    slug=slug,
                    city=city,
                    tags=tags,
                    privacy_level="public",
                    owner_id=people[owner],
                )
            )
            await session.flush()
        for handle, role in [(owner, "owner"), *((m, "member") for m in members)]:
            await session.execute(
                insert(ClubMembership)
                .values(
                    id=uuid.uuid4(),
                    club_id=club_id,
                    user_id=people[handle],
                    role=role,
                    status="active",
                    joined_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
        count = select(func.count()).where(ClubMembership.club_id == club_id, ClubMembership.status == "active")
        await session.execute(update(Club).where(Club.id == club_id).values(member_count=count.scalar_subquery()))
        out[slug] = club_id
    return out


async def _events(session: AsyncSession, people: dict[str, uuid.UUID], clubs: dict[str, uuid.UUID]) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for slug, title, organizer, club, city, lat, lng, tags, days, goers in EVENTS:
        event_id = await session.scalar(select(Event.id).where(Event.slug == slug))
        start = now + timedelta(days=days, hours=18 - now.hour)
        if event_id is None:
            event_id = uuid.uuid4()
            session.add(
                Event(
                    id=event_id,
                    organizer_id=people[organizer],
                    club_id=clubs[club] if club else None,
                    slug=slug,
                    title=title,
                    start_time=start,
                    end_time=start + timedelta(hours=3),
                    timezone="UTC",
                    location_name=title,
                    latitude=lat,
                    longitude=lng,
                    city=city,
                    address_visibility="public",
                    capacity=40,
                    tags=tags,
                    visibility="public",
                    kind="event",
                    ticket_type="free",
                    currency="USD",
                    status="published",
                    published_at=utcnow(),
                )
            )
            await session.flush()
        else:
            # A re-seed weeks later moves the demo events back into the future.
            await session.execute(
                update(Event)
                .where(Event.id == event_id, Event.start_time < utcnow())
                .values(start_time=start, end_time=start + timedelta(hours=3))
            )
        for handle in goers:
            await session.execute(
                insert(Rsvp)
                .values(id=uuid.uuid4(), event_id=event_id, user_id=people[handle], status="confirmed")
                .on_conflict_do_nothing()
            )
        seats = select(func.count()).where(Rsvp.event_id == event_id, Rsvp.status == "confirmed")
        await session.execute(update(Event).where(Event.id == event_id).values(seats_taken=seats.scalar_subquery()))


async def _places(session: AsyncSession, curator: uuid.UUID) -> None:
    ids = []
    for name, category, city, lat, lng, premium, description in PLACES:
        place_id = await session.scalar(select(Place.id).where(Place.name == name, Place.city == city))
        if place_id is None:
            place_id = uuid.uuid4()
            session.add(
                Place(
                    id=place_id,
                    created_by=curator,
                    name=name,
                    category=category,
                    city=city,
                    latitude=lat,
                    longitude=lng,
                    description=description,
                    is_premium=premium,
                )
            )
            await session.flush()
        if city == "Austin":
            ids.append(place_id)
    if await session.scalar(select(CuratedList.id).where(CuratedList.title == LIST_TITLE)) is None:
        list_id = uuid.uuid4()
        session.add(CuratedList(id=list_id, curator_id=curator, title=LIST_TITLE, city="Austin"))
        await session.flush()
        for position, place_id in enumerate(ids):
            session.add(CuratedListItem(list_id=list_id, place_id=place_id, position=position))
        await session.flush()
