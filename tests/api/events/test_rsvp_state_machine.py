"""A hypothesis state machine over RSVP, cancel, capacity change, approve and reject, on the real database.

Invariants after every step: confirmed seats equal ``events.seats_taken`` and never exceed capacity;
the waitlist keeps its arrival order; promotions only ever take the head of the queue; and no head
that fits is left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import ids
from shared.config import Settings, load_settings
from shared.db.session import create_engine, create_session_factory
from shared.domain.auth.tokens import AccessClaims
from shared.domain.events.models import Event, Rsvp
from shared.domain.events.schemas import EventCreate, EventUpdate, LocationIn, RsvpRequest
from shared.domain.events.services import EventService
from shared.domain.media.services import MediaService
from shared.domain.users.models import User
from shared.errors import DomainError
from shared.storage import Storage

USERS = 6


class RsvpMachine(RuleBasedStateMachine):
    """Drives one event through random RSVP traffic and checks the seat and queue invariants."""

    loop: asyncio.AbstractEventLoop
    service: EventService
    sessions: async_sessionmaker[AsyncSession]
    organizer: AccessClaims
    users: list[AccessClaims]

    def __init__(self) -> None:
        super().__init__()
        self.event_id: uuid.UUID | None = None
        self.arrivals: list[uuid.UUID] = []
        self.before: list[uuid.UUID] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(capacity=st.integers(1, 6), approval=st.booleans())
    def create(self, capacity: int, approval: bool) -> None:
        start = datetime.now(UTC) + timedelta(days=2)
        data = EventCreate(
            title="Machine",
            start_time=start,
            end_time=start + timedelta(hours=1),
            location=LocationIn(name="Here", latitude=0.0, longitude=0.0),
            capacity=capacity,
            requires_approval=approval,
        )
        created = self.run(self.service.create_event(self.organizer, data, None))
        self.event_id = ids.decode(ids.Prefix.EVENT, created.id)
        self.run(self.service.publish(self.organizer, self.event_id))

    def attempt(self, coro: Any) -> None:
        assert self.event_id is not None
        self.before = self.waitlist()
        # Refusals (event_full, not_pending ...) are part of the game; the invariants must hold after them too.
        with contextlib.suppress(DomainError):
            self.run(coro)

    @rule(
        who=st.integers(0, USERS - 1), answer=st.sampled_from(["going", "maybe", "not_going"]), guests=st.integers(0, 3)
    )
    def answer(self, who: int, answer: str, guests: int) -> None:
        assert self.event_id is not None
        request = RsvpRequest(status=answer, guest_count=guests)  # type: ignore[arg-type]
        self.attempt(self.service.rsvp(self.users[who], self.event_id, request))
        self.check_promotions(exclude=self.users[who].user_id)

    @rule(capacity=st.integers(1, 8))
    def change_capacity(self, capacity: int) -> None:
        assert self.event_id is not None
        self.attempt(self.service.update_event(self.organizer, self.event_id, EventUpdate(capacity=capacity)))
        self.check_promotions(exclude=None)

    @rule(who=st.integers(0, USERS - 1), approve=st.booleans())
    def decide(self, who: int, approve: bool) -> None:
        assert self.event_id is not None
        rsvp_id = self.run(self.rsvp_id_of(self.users[who].user_id))
        if rsvp_id is None:
            return
        self.attempt(self.service.decide(self.organizer, self.event_id, [rsvp_id], approve=approve))
        self.check_promotions(exclude=self.users[who].user_id)

    async def rsvp_id_of(self, user_id: uuid.UUID) -> uuid.UUID | None:
        async with self.sessions() as session:
            value: uuid.UUID | None = await session.scalar(
                select(Rsvp.id).where(Rsvp.event_id == self.event_id, Rsvp.user_id == user_id)
            )
            return value

    async def rows(self) -> tuple[Event, list[Rsvp]]:
        async with self.sessions() as session:
            event = await session.get(Event, self.event_id)
            assert event is not None
            rsvps = list(await session.scalars(select(Rsvp).where(Rsvp.event_id == self.event_id)))
            return event, rsvps

    def waitlist(self) -> list[uuid.UUID]:
        _, rsvps = self.run(self.rows())
        waiting = sorted((r for r in rsvps if r.status == "waitlisted"), key=lambda r: r.queue_seq)
        return [r.user_id for r in waiting]

    def check_promotions(self, exclude: uuid.UUID | None) -> None:
        """Whoever left the queue without acting themselves was promoted, and only from its head."""
        _, rsvps = self.run(self.rows())
        status = {r.user_id: r.status for r in rsvps}
        after = set(self.waitlist())
        queue = [u for u in self.before if u != exclude]
        promoted = [u for u in queue if u not in after]
        assert all(status[u] == "confirmed" for u in promoted)
        assert promoted == queue[: len(promoted)]

    @invariant()
    def seats_within_capacity_and_fifo(self) -> None:
        if self.event_id is None:
            return
        event, rsvps = self.run(self.rows())
        confirmed = sum(r.seats for r in rsvps if r.status == "confirmed")
        assert confirmed == event.seats_taken
        assert event.capacity is None or confirmed <= event.capacity
        waiting = sorted((r for r in rsvps if r.status == "waitlisted"), key=lambda r: r.queue_seq or 0)
        # Whoever left the queue (promoted, stepped back, rejected) and comes back queues again at the end.
        still_waiting = {r.user_id for r in waiting}
        self.arrivals = [u for u in self.arrivals if u in still_waiting]
        for r in waiting:
            if r.user_id not in self.arrivals:
                self.arrivals.append(r.user_id)
        order = [u for u in self.arrivals if u in {r.user_id for r in waiting}]
        assert [r.user_id for r in waiting] == order
        if waiting and event.capacity is not None:
            # Nobody who fits is left at the head of the queue.
            assert event.seats_taken + waiting[0].seats > event.capacity
        assert all(r.ticket_code is not None for r in rsvps if r.status == "confirmed")


async def _users(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    made = []
    async with sessions.begin() as session:
        for i in range(USERS + 1):
            user = User(
                id=ids.uuid7(), email=f"machine-{uuid.uuid4().hex}@example.com", password_hash="x", display_name=f"M{i}"
            )
            session.add(user)
            made.append(user.id)
    return made


def _claims(user_id: uuid.UUID, *roles: str) -> AccessClaims:
    return AccessClaims(user_id=user_id, session_id=uuid.uuid4(), roles=("user", *roles), expires_at=0)


def test_rsvp_state_machine(engine_env: dict[str, str]) -> None:
    config: Settings = load_settings(engine_env)
    loop = asyncio.new_event_loop()
    engine: AsyncEngine = create_engine(config)
    try:
        sessions = create_session_factory(engine)
        people = loop.run_until_complete(_users(sessions))
        RsvpMachine.loop = loop
        RsvpMachine.sessions = sessions
        RsvpMachine.service = EventService(
            config, sessions, media=MediaService(config, sessions, sessions, Storage(config))
        )
        RsvpMachine.organizer = _claims(people[0], "organizer")
        RsvpMachine.users = [_claims(p) for p in people[1:]]
        run_state_machine_as_test(
            RsvpMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
