"""A small, believable demo community, loaded idempotently by ``tribe seed`` / ``tribe up --seed``."""

from __future__ import annotations

import msgspec
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select, update

from shared.clock import utcnow
from shared.config import Settings
from shared.db.session import create_engine, create_session_factory
from shared.dev.seed_community import seed_community
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessTokens
from shared.domain.users.models import Role, User
from shared.domain.users.schemas import RegisterRequest

DEMO_PASSWORD = "tribe-demo-password"

# (email, display name, city, interests, bio, extra roles)
DEMO_USERS: tuple[tuple[str, str, str, list[str], str, list[str]], ...] = (
    (
        "alex@demo.tribe.dev",
        "Alex Rivera",
        "Austin",
        ["hiking", "live music"],
        "Trail runner, taco critic.",
        ["organizer"],
    ),
    ("jordan@demo.tribe.dev", "Jordan Lee", "Austin", ["hiking", "photography"], "Sunrise chaser with a camera.", []),
    (
        "sam@demo.tribe.dev",
        "Sam Okafor",
        "Austin",
        ["board games", "coffee"],
        "Hosts a Thursday games night.",
        ["organizer"],
    ),
    ("priya@demo.tribe.dev", "Priya Nair", "Austin", ["yoga", "live music"], "Yoga teacher, vinyl collector.", []),
    ("mia@demo.tribe.dev", "Mia Schultz", "Berlin", ["climbing", "techno"], "Bouldering most evenings.", []),
    ("noah@demo.tribe.dev", "Noah Brooks", "Berlin", ["cycling", "coffee"], "Weekend century rides.", []),
    ("lena@demo.tribe.dev", "Lena Park", "Austin", ["books", "coffee"], "Runs a slow-reading club.", ["curator"]),
    ("admin@demo.tribe.dev", "Tribe Admin", "Austin", [], "Keeps the lights on.", ["admin", "moderator"]),
)


async def seed_demo(settings: Settings, console: Console) -> None:
    """Create the demo accounts that do not exist yet; safe to run again."""
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    # Seeded accounts are the operator's bootstrap (the admin among them invites without a quota),
    # so they need no invite code even on an invite-only platform.
    auth = AuthService(msgspec.structs.replace(settings, invite_only=False), sessions, AccessTokens(settings))
    created = 0
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Seeding demo community", total=len(DEMO_USERS))
            for email, name, city, interests, bio, roles in DEMO_USERS:
                async with sessions() as session:
                    exists = await session.scalar(select(User.id).where(User.email == email))
                if exists is None:
                    await auth.register(
                        RegisterRequest(
                            email=email,
                            password=DEMO_PASSWORD,
                            display_name=name,
                            city=city,
                            interests=interests,
                            signup_source="seed",
                        )
                    )
                    created += 1
                async with sessions.begin() as session:
                    await session.execute(
                        update(User)
                        .where(User.email == email)
                        .values(
                            bio=bio,
                            roles=[Role.USER.value, *roles],
                            email_verified_at=func.coalesce(User.email_verified_at, utcnow()),
                        )
                    )
                progress.advance(task)
    finally:
        await engine.dispose()
    console.print(f"  demo community: {created} new of {len(DEMO_USERS)} users (password [bold]{DEMO_PASSWORD}[/bold])")
    await seed_community(settings, console)
