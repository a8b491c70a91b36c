"""Fixtures for worker tests, built on the session's engines (``engine_env``, ``mail_dir``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import Settings, load_settings
from shared.db.session import create_engine, create_session_factory
from shared.domain.users.models import User
from workers.outbox import OutboxRelay
from workers.serialization import job_deserializer, job_serializer
from workers.settings import create_worker

FindMail = Callable[[str], list[EmailMessage]]
WaitForMail = Callable[[str], Awaitable[list[EmailMessage]]]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture(scope="session")
def settings(engine_env: dict[str, str]) -> Settings:
    """Settings pointing at the session's engines."""
    return load_settings(engine_env)


@pytest.fixture(scope="session")
async def db_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """One engine for the worker tests."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory on ``db_engine``."""
    return create_session_factory(db_engine)


@pytest.fixture
def queue_name() -> str:
    """An arq queue of this test's own, so jobs other tests leave behind do not run here."""
    return f"tribe-test:{uuid.uuid4().hex}"


@pytest.fixture
async def arq_redis(settings: Settings, queue_name: str) -> AsyncIterator[ArqRedis]:
    """An arq pool with the worker's codec whose default queue is ``queue_name``."""
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=queue_name,
    )
    yield pool
    await pool.delete(queue_name)
    await pool.aclose()


@pytest.fixture
async def nats_client(settings: Settings) -> AsyncIterator[NatsClient]:
    """A NATS connection of the test's own."""
    client = NatsClient()
    await client.connect(settings.nats_url, connect_timeout=2, max_reconnect_attempts=2)
    yield client
    await client.close()


@pytest.fixture
def find_mail(mail_dir: Path) -> FindMail:
    """Parsed ``.eml`` files in the sink whose Subject is the given one."""

    def find(subject: str) -> list[EmailMessage]:
        found = []
        for path in sorted(mail_dir.glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            if message["Subject"] == subject:
                found.append(message)
        return found

    return find


@pytest.fixture
def wait_for_mail(find_mail: FindMail) -> WaitForMail:
    """Wait (up to 10 s) until a mail with the given Subject is in the sink."""

    async def wait(subject: str) -> list[EmailMessage]:
        async with asyncio.timeout(10):
            while True:
                if found := find_mail(subject):
                    return found
                await asyncio.sleep(0.05)

    return wait


@pytest.fixture
def eventually() -> Eventually:
    """Wait (up to 10 s) until the given condition holds."""

    async def wait(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)

    return wait


MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
def make_user(sessions: async_sessionmaker[AsyncSession]) -> MakeUser:
    """Insert a user row directly (worker tests have no API); keyword arguments set columns."""

    async def make(**columns: object) -> User:
        tag = uuid.uuid4().hex[:12]
        values: dict[str, object] = {
            "email": f"w-{tag}@example.com",
            "password_hash": "not-a-login",
            "display_name": f"Worker Test {tag}",
            **columns,
        }
        async with sessions.begin() as session:
            user = User(**values)
            session.add(user)
        return user

    return make


Drain = Callable[[], Awaitable[int]]


@pytest.fixture
def drain(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, queue_name: str
) -> Drain:
    """Relay the outbox and run burst workers on the test's queue until nothing due is left; returns jobs run.

    Jobs deferred into the future (quiet hours) stay queued: each burst is capped at the jobs due when it starts.
    """

    async def run() -> int:
        nats = NatsClient()
        await nats.connect(settings.nats_url, connect_timeout=2, max_reconnect_attempts=2)
        relay = OutboxRelay(sessions=sessions, redis=arq_redis, nats=nats)
        total = 0
        try:
            for _ in range(10):
                relayed = await relay.drain()
                due = await arq_redis.zcount(queue_name, "-inf", time.time() * 1000)
                if not relayed and not due:
                    return total
                if not due:
                    continue
                # No crons: each start would queue another heartbeat, and the cap must count only due jobs.
                worker = create_worker(
                    settings,
                    burst=True,
                    handle_signals=False,
                    queue_name=queue_name,
                    max_burst_jobs=due,
                    cron_jobs=[],
                )
                try:
                    async with asyncio.timeout(30):
                        total += await worker.run_check()
                finally:
                    await worker.close()
        finally:
            await nats.close()
        raise AssertionError("the outbox and queue did not settle within 10 rounds")

    return run
