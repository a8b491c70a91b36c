"""The outbox relay: committed outbox rows become arq jobs and NATS events, each row once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so any number of workers can relay at
once without two of them handling the same row. For each row the relay queues the
event's job (job id derived from the row id, so a row relayed again is not queued
again), publishes the event on :func:`shared.bus.publish_subject` (unless its writer
already did and stamped ``live_published_at``), and marks the row published, all in
one transaction per batch. A row that fails is counted, keeps its
error and is retried after a back-off; the rest of the batch goes on.

The relay wakes on Postgres ``LISTEN tribe_outbox`` (``shared.bus.record`` notifies on
commit) and also polls, so a lost notification or listener connection only adds latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import structlog
from arq.connections import ArqRedis
from nats.aio.client import Client as NatsClient
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import (
    OUTBOX_CHANNEL,
    SELF_PUBLISH_GRACE_SECONDS,
    SELF_PUBLISHED_TYPES,
    DomainEvent,
    OutboxRow,
    encode_event,
    event_type,
    publish_subject,
)
from workers.enqueue import enqueue_for_event

log = structlog.stdlib.get_logger(__name__)

# JetStream drops a second message with the same id inside its duplicate window,
# which covers a batch that was published but whose commit failed.
NATS_MSG_ID_HEADER = "Nats-Msg-Id"

_MAX_BACKOFF_S = 60.0
_LISTEN_RETRY_S = 5.0


def listen_dsn(database_url: str) -> str:
    """A libpq-style DSN for ``asyncpg.connect`` from a SQLAlchemy database URL."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError("expected a postgresql:// URL")
    return f"postgresql://{rest}"


def failure_backoff(attempts: int) -> float:
    """Seconds to leave a failed row alone after its ``attempts``-th failure: 1, 2, 4 ... capped at a minute."""
    return min(2.0 ** max(attempts - 1, 0), _MAX_BACKOFF_S)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one :meth:`OutboxRelay.relay_once` did."""

    claimed: int
    published: int
    failed: int


class OutboxRelay:
    """Moves committed outbox rows to arq and NATS; safe to run in every worker at once."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        redis: ArqRedis,
        nats: NatsClient,
        listen_dsn: str | None = None,
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        publish_timeout_s: int = 5,
        self_publish_grace_s: float = SELF_PUBLISH_GRACE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._nats = nats
        self._listen_dsn = listen_dsn
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._self_publish_grace = timedelta(seconds=self_publish_grace_s)
        self._monotonic = monotonic
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # asyncpg.Connection while listening
        self._listen_retry_at = 0.0
        self._failing = False
        # Row id -> monotonic time before which this process leaves a failed row alone.
        # Only a hint for pacing retries; correctness rests on the row lock and the job id.
        self._backoff: dict[uuid.UUID, float] = {}

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (otherwise only polling wakes the relay)."""
        return self._listener is not None and not self._listener.is_closed()

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Ask the running relay to look for rows now."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay in a background task until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("the relay is already running")
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-relay")

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Finish the batch in hand (up to ``grace_s``), then stop and close the listener."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def drain(self) -> int:
        """Relay batches until no claimable row is left; returns how many rows were published."""
        published = 0
        while not self._stopping.is_set():
            result = await self.relay_once()
            published += result.published
            # A short batch means the queue is empty; a failure means the rest can wait for the back-off.
            if result.claimed < self._batch_size or result.failed:
                break
        return published

    async def relay_once(self) -> BatchResult:
        """Claim one batch of unpublished rows, hand each on, and commit what happened."""
        now = self._monotonic()
        self._backoff = {row_id: until for row_id, until in self._backoff.items() if until > now}
        query = (
            select(
                OutboxRow.id,
                OutboxRow.event_type,
                OutboxRow.payload,
                OutboxRow.attempts,
                OutboxRow.live_published_at,
            )
            .where(OutboxRow.published_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        if self._backoff:
            query = query.where(OutboxRow.id.not_in(list(self._backoff)))
        # Rows their writer publishes itself are ours once published live (we only queue their jobs),
        # or once that writer had its chance and missed it (we publish them too).
        query = query.where(
            or_(
                OutboxRow.event_type.not_in(SELF_PUBLISHED_TYPES),
                OutboxRow.live_published_at.is_not(None),
                OutboxRow.created_at < func.now() - self._self_publish_grace,
            )
        )

        async with self._sessions() as session, session.begin():
            rows = (await session.execute(query)).all()
            attempts = {row.id: row.attempts for row in rows}
            handed_on: list[uuid.UUID] = []
            failures: dict[uuid.UUID, str] = {}
            published = False
            for row in rows:
                try:
                    await self._hand_on(row.id, row.event_type, row.payload, publish=row.live_published_at is None)
                except Exception as exc:
                    failures[row.id] = _describe(exc)
                else:
                    handed_on.append(row.id)
                    published = published or row.live_published_at is None

            if published:
                try:
                    # publish() only buffers; a row may be marked published once the server has its event.
                    await self._nats.flush(timeout=self._publish_timeout_s)
                except Exception as exc:
                    failures.update(dict.fromkeys(handed_on, f"NATS flush failed: {_describe(exc)}"))
                    handed_on = []

            if handed_on:
                await session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(handed_on)).values(published_at=func.now())
                )
            for row_id, error in failures.items():
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == row_id)
                    .values(attempts=OutboxRow.attempts + 1, last_error=error[:500])
                )
                self._backoff[row_id] = now + failure_backoff(attempts[row_id] + 1)
                log.warning("outbox.row_failed", row_id=str(row_id), attempts=attempts[row_id] + 1, error=error)
        return BatchResult(claimed=len(rows), published=len(handed_on), failed=len(failures))

    async def _hand_on(self, row_id: uuid.UUID, type_: str, payload: dict[str, Any], *, publish: bool) -> None:
        event: DomainEvent = msgspec.convert(payload, DomainEvent)
        if event_type(event) != type_:
            raise ValueError(f"row says {type_!r} but its payload is {event_type(event)!r}")
        # Queue before publishing: if publishing fails the row is retried and the job id stops a second job.
        await enqueue_for_event(self._redis, event, cause=row_id)
        if not publish:
            return
        await self._nats.publish(publish_subject(event), encode_event(event), headers={NATS_MSG_ID_HEADER: str(row_id)})

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                # Cleared before draining, so a commit notified mid-drain triggers another pass.
                self._wake.clear()
                await self._ensure_listening()
                try:
                    await self.drain()
                except Exception as exc:
                    # One traceback per outage, not one per poll while the database is down.
                    if not self._failing:
                        log.exception("outbox.relay_failed")
                    else:
                        log.debug("outbox.relay_still_failing", error=_describe(exc))
                    self._failing = True
                else:
                    if self._failing:
                        log.info("outbox.relay_recovered")
                    self._failing = False
                if self._stopping.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval_s):
                        await self._wake.wait()
        finally:
            await self._close_listener()

    async def _ensure_listening(self) -> None:
        if self._listen_dsn is None or self.listening or self._monotonic() < self._listen_retry_at:
            return
        await self._close_listener()
        connection: Any = None
        try:
            connection = await asyncpg.connect(self._listen_dsn, timeout=_LISTEN_RETRY_S)
            await connection.add_listener(OUTBOX_CHANNEL, self._on_notify)
        except Exception as exc:  # a background loop must outlive a database outage
            if connection is not None:
                connection.terminate()
            self._listen_retry_at = self._monotonic() + _LISTEN_RETRY_S
            log.warning("outbox.listen_failed", error=_describe(exc), retry_in_s=_LISTEN_RETRY_S)
            return
        self._listener = connection
        log.info("outbox.listening", channel=OUTBOX_CHANNEL)

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
