"""The outbox relay: rows become one arq job and one NATS event each, under retries and concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from email.message import EmailMessage

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from shared.bus import EmailRequested, Event, OutboxRow, UserRegistered, decode_event, record, subject_for
from shared.config import Settings
from shared.db.session import create_session_factory
from workers.context import RESOURCES_KEY
from workers.jobs.mail import SEND_EMAIL, sent_marker_key
from workers.outbox import NATS_MSG_ID_HEADER, OutboxRelay, listen_dsn
from workers.serialization import job_deserializer
from workers.settings import create_worker

Sessions = async_sessionmaker[AsyncSession]


class Inbox:
    """Messages received on ``events.>`` during one test."""

    def __init__(self, client: NatsClient) -> None:
        self.client = client
        self.messages: list[Msg] = []
        self._arrived = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        """Subscription callback."""
        self.messages.append(msg)
        self._arrived.set()

    def matching(self, marker: str) -> list[Msg]:
        """Messages whose body contains ``marker``."""
        return [m for m in self.messages if marker.encode() in m.data]

    async def settle(self, marker: str, expected: int) -> list[Msg]:
        """Wait for ``expected`` messages with ``marker``, then one more round trip so extras would show."""
        async with asyncio.timeout(10):
            while len(self.matching(marker)) < expected:
                self._arrived.clear()
                await self._arrived.wait()
        # The server queues everything it routed to us before the PONG that ends this flush.
        await self.client.flush()
        await asyncio.sleep(0.05)
        return self.matching(marker)


@pytest.fixture
async def inbox(nats_client: NatsClient) -> AsyncIterator[Inbox]:
    """A subscription to every domain event subject."""
    box = Inbox(nats_client)
    sub = await nats_client.subscribe("events.>", cb=box.on_message)
    await nats_client.flush()
    yield box
    await sub.unsubscribe()


@pytest.fixture
async def relay_nats(settings: Settings) -> AsyncIterator[NatsClient]:
    """The NATS connection relays publish on (separate from the subscriber's)."""
    client = NatsClient()
    await client.connect(settings.nats_url, connect_timeout=2, max_reconnect_attempts=2)
    yield client
    await client.close()


@pytest.fixture
def make_relay(sessions: Sessions, arq_redis: ArqRedis, relay_nats: NatsClient) -> Callable[..., OutboxRelay]:
    """Build relays on the test's queue; keyword arguments go to ``OutboxRelay``."""

    def make(**kwargs: object) -> OutboxRelay:
        return OutboxRelay(sessions=sessions, redis=arq_redis, nats=relay_nats, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def row_ids(sessions: Sessions) -> AsyncIterator[list[uuid.UUID]]:
    """Outbox rows the test made; deleted afterwards so no later relay keeps retrying them."""
    ids: list[uuid.UUID] = []
    yield ids
    async with sessions() as session, session.begin():
        await session.execute(delete(OutboxRow).where(OutboxRow.id.in_(ids)))


async def record_events(sessions: Sessions, *events: Event) -> list[uuid.UUID]:
    """Commit ``events`` to the outbox the way a service does."""
    async with sessions() as session, session.begin():
        return await record(session, *events)


async def get_rows(sessions: Sessions, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, OutboxRow]:
    """The rows ``ids`` as they are now."""
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.id.in_(list(ids))))).all()
    return {row.id: row for row in rows}


async def queued_job_ids(redis: ArqRedis, queue_name: str) -> list[str]:
    """Job ids waiting in ``queue_name``."""
    return [job_id.decode() for job_id in await redis.zrange(queue_name, 0, -1)]


async def relay_until_empty(relay: OutboxRelay) -> None:
    """Relay until no claimable row is left (other tests' rows included)."""
    while (await relay.relay_once()).claimed:
        pass


async def test_email_event_is_relayed_sent_and_published(
    settings: Settings,
    sessions: Sessions,
    arq_redis: ArqRedis,
    queue_name: str,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
    find_mail: Callable[[str], list[EmailMessage]],
) -> None:
    marker = uuid.uuid4().hex
    email = EmailRequested(to="alice@example.com", subject=f"Welcome {marker}", body=f"Hello Alice {marker}\n")
    row_ids += await record_events(sessions, email)

    await relay_until_empty(make_relay())
    worker = create_worker(settings, burst=True, handle_signals=False, queue_name=queue_name)
    try:
        assert await worker.run_check() >= 1
    finally:
        await worker.close()

    [mail] = find_mail(email.subject)
    assert mail["To"] == "alice@example.com"
    assert mail["From"] == settings.mail_from
    [msg] = await inbox.settle(marker, 1)
    assert msg.subject == subject_for("email.requested") == "events.email.requested"
    assert decode_event(msg.data) == email
    assert msg.headers == {NATS_MSG_ID_HEADER: str(row_ids[0])}
    [row] = (await get_rows(sessions, row_ids)).values()
    assert row.published_at is not None
    assert (row.attempts, row.last_error) == (0, None)
    assert await arq_redis.exists(sent_marker_key(SEND_EMAIL.job_id(row.id)))


async def test_running_worker_relays_on_notify(
    settings: Settings,
    sessions: Sessions,
    queue_name: str,
    inbox: Inbox,
    row_ids: list[uuid.UUID],
    wait_for_mail: Callable[[str], Awaitable[list[EmailMessage]]],
    eventually: Callable[[Callable[[], bool]], Awaitable[None]],
) -> None:
    worker = create_worker(settings, handle_signals=False, queue_name=queue_name)
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: RESOURCES_KEY in worker.ctx)
        marker = uuid.uuid4().hex
        email = EmailRequested(to="carol@example.com", subject=f"Live {marker}", body="hi\n")
        row_ids += await record_events(sessions, email)

        [mail] = await wait_for_mail(email.subject)
        assert mail["To"] == "carol@example.com"
        await inbox.settle(marker, 1)
    finally:
        await worker.close()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_listen_wakes_the_relay_without_polling(
    settings: Settings,
    sessions: Sessions,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
    eventually: Callable[[Callable[[], bool]], Awaitable[None]],
) -> None:
    # A poll interval far beyond the wait below: only the NOTIFY can make this pass.
    relay = make_relay(listen_dsn=listen_dsn(settings.database_url), poll_interval_s=3600)
    relay.start()
    try:
        await eventually(lambda: relay.listening)
        marker = uuid.uuid4().hex
        row_ids += await record_events(sessions, EmailRequested(to="d@example.com", subject=marker, body="x"))

        await inbox.settle(marker, 1)
    finally:
        await relay.stop()
    assert not relay.listening


async def test_relaying_twice_hands_a_row_on_once(
    sessions: Sessions,
    arq_redis: ArqRedis,
    queue_name: str,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
) -> None:
    marker = uuid.uuid4().hex
    row_ids += await record_events(sessions, EmailRequested(to="e@example.com", subject=marker, body="x"))
    relay = make_relay()

    await relay_until_empty(relay)
    await relay_until_empty(relay)
    await relay_until_empty(make_relay())

    assert len(await inbox.settle(marker, 1)) == 1
    job_id = SEND_EMAIL.job_id(row_ids[0])
    assert [j for j in await queued_job_ids(arq_redis, queue_name) if j == job_id] == [job_id]


async def test_row_relayed_again_after_a_lost_commit_is_not_queued_again(
    sessions: Sessions,
    arq_redis: ArqRedis,
    queue_name: str,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
) -> None:
    marker = uuid.uuid4().hex
    row_ids += await record_events(sessions, EmailRequested(to="f@example.com", subject=marker, body="x"))
    await relay_until_empty(make_relay())
    job = Job(SEND_EMAIL.job_id(row_ids[0]), arq_redis, _queue_name=queue_name, _deserializer=job_deserializer)
    first = await job.info()
    assert first is not None
    # As if the relay crashed after handing the row on but before its commit.
    async with sessions() as session, session.begin():
        await session.execute(update(OutboxRow).where(OutboxRow.id == row_ids[0]).values(published_at=None))

    await relay_until_empty(make_relay())

    again = await job.info()
    assert again is not None
    assert again.enqueue_time == first.enqueue_time
    assert await job.status() == JobStatus.queued
    assert job.job_id in await queued_job_ids(arq_redis, queue_name)
    # NATS is at-least-once here; both copies carry the row id so JetStream and clients can drop the second.
    messages = await inbox.settle(marker, 2)
    assert {m.headers[NATS_MSG_ID_HEADER] for m in messages if m.headers} == {str(row_ids[0])}


async def test_concurrent_relays_never_double_handle_a_row(
    sessions: Sessions,
    arq_redis: ArqRedis,
    queue_name: str,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
) -> None:
    marker = uuid.uuid4().hex
    events = [EmailRequested(to=f"u{i}@example.com", subject=f"{marker} #{i}", body="x") for i in range(60)]
    row_ids += await record_events(sessions, *events[:30])
    row_ids += await record_events(sessions, *events[30:], UserRegistered(user_id=uuid.uuid4()))
    relays = [make_relay(batch_size=7) for _ in range(4)]

    async def relay_all(relay: OutboxRelay) -> int:
        published = 0
        while (result := await relay.relay_once()).claimed:
            published += result.published
        return published

    await asyncio.gather(*(relay_all(r) for r in relays))

    messages = await inbox.settle(marker, len(events))
    assert sorted(m.data for m in messages) == sorted({m.data for m in messages})
    expected_jobs = {SEND_EMAIL.job_id(row_id) for row_id in row_ids[:60]}
    queued = await queued_job_ids(arq_redis, queue_name)
    assert expected_jobs <= set(queued)
    rows = await get_rows(sessions, row_ids)
    assert all(row.published_at is not None and row.attempts == 0 for row in rows.values())


async def test_failing_row_is_counted_and_does_not_block_the_rest(
    sessions: Sessions,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
) -> None:
    marker = uuid.uuid4().hex
    async with sessions() as session, session.begin():
        broken = OutboxRow(event_type="email.requested", payload={"type": "email.requested", "to": 42})
        session.add(broken)
        await session.flush()
        row_ids.append(broken.id)
        row_ids.extend(await record(session, EmailRequested(to="g@example.com", subject=marker, body="x")))
    relay = make_relay()

    await relay_until_empty(relay)
    await relay_until_empty(relay)  # inside its back-off: this relay leaves the broken row alone

    await inbox.settle(marker, 1)
    rows = await get_rows(sessions, row_ids)
    assert rows[row_ids[1]].published_at is not None
    failed = rows[row_ids[0]]
    assert failed.published_at is None
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert "ValidationError" in failed.last_error

    # Another worker (no back-off memory) retries it and counts the attempt again.
    await make_relay().relay_once()
    assert (await get_rows(sessions, row_ids[:1]))[row_ids[0]].attempts == 2


async def test_relay_outlives_a_database_outage(arq_redis: ArqRedis, relay_nats: NatsClient) -> None:
    # Nothing listens on port 1: every connection is refused, as while Postgres restarts.
    down = "postgresql+asyncpg://postgres@127.0.0.1:1/tribe"
    engine = create_async_engine(down)
    relay = OutboxRelay(
        sessions=create_session_factory(engine),
        redis=arq_redis,
        nats=relay_nats,
        listen_dsn=listen_dsn(down),
        poll_interval_s=0.1,
    )
    relay.start()
    try:
        await asyncio.sleep(0.5)  # several failed passes
        assert relay.running
        assert not relay.listening
    finally:
        await relay.stop()
        await engine.dispose()
    assert not relay.running


async def test_rows_claimed_by_a_killed_worker_are_relayed_once_by_another(
    sessions: Sessions,
    arq_redis: ArqRedis,
    queue_name: str,
    inbox: Inbox,
    make_relay: Callable[..., OutboxRelay],
    row_ids: list[uuid.UUID],
) -> None:
    marker = uuid.uuid4().hex
    events = [EmailRequested(to=f"k{i}@example.com", subject=f"{marker} #{i}", body="x") for i in range(5)]
    row_ids += await record_events(sessions, *events)
    # A worker mid-batch: its transaction holds the row locks when the process dies.
    dying = await sessions().connection()
    await dying.execute(select(OutboxRow.id).where(OutboxRow.id.in_(row_ids)).with_for_update())
    pid = await dying.scalar(select(func.pg_backend_pid()))
    survivor = make_relay()

    await relay_until_empty(survivor)
    assert all(row.published_at is None for row in (await get_rows(sessions, row_ids)).values())

    async with sessions() as admin:
        assert await admin.scalar(select(func.pg_terminate_backend(pid)))
    with contextlib.suppress(Exception):
        await dying.close()
    await relay_until_empty(survivor)
    await relay_until_empty(make_relay())

    messages = await inbox.settle(marker, len(events))
    assert len(messages) == len(events)
    rows = await get_rows(sessions, row_ids)
    assert all(row.published_at is not None and row.attempts == 0 for row in rows.values())
    queued = set(await queued_job_ids(arq_redis, queue_name))
    assert {SEND_EMAIL.job_id(row_id) for row_id in row_ids} <= queued
