"""Idempotency-Key handling for money-moving requests: replay, mismatch (422) and in-flight (409)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.domain.payments.models import IdempotencyKey
from shared.errors import Conflict, FieldError, InvalidInput

# A key left in flight this long belongs to a request that died; a retry may take it over.
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    """A response body and status, fresh or replayed."""

    status_code: int
    body: bytes
    replayed: bool


class IdempotencyGuard:
    """Runs a request once per (user, scope, key); repeats get the first response back."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    async def run(
        self,
        user_id: uuid.UUID,
        scope: str,
        key: str | None,
        request: msgspec.Struct,
        status_code: int,
        call: Callable[[], Awaitable[msgspec.Struct]],
    ) -> StoredResponse:
        """Call ``call`` unless this key already has (or is producing) a response."""
        if key is None:
            return StoredResponse(status_code, msgspec.json.encode(await call()), replayed=False)
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 characters",
                errors=[FieldError("Idempotency-Key", "invalid length")],
            )
        request_hash = hashlib.sha256(msgspec.json.encode(request)).hexdigest()
        row_id = await self._claim(user_id, scope, key, request_hash)
        if isinstance(row_id, StoredResponse):
            return row_id
        try:
            result = msgspec.json.encode(await call())
        except BaseException:
            # A failed attempt stores nothing, so the client may retry with the same key.
            async with self._sessions.begin() as session:
                await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
            raise
        async with self._sessions.begin() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == row_id)
                .values(state="done", status_code=status_code, response_body=result)
            )
        return StoredResponse(status_code, result, replayed=False)

    async def _claim(self, user_id: uuid.UUID, scope: str, key: str, request_hash: str) -> uuid.UUID | StoredResponse:
        now = self._clock()
        async with self._sessions.begin() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id,
                    IdempotencyKey.scope == scope,
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == "in_flight",
                    IdempotencyKey.created_at < now - ABANDONED_AFTER,
                )
            )
            claimed = await session.scalar(
                insert(IdempotencyKey)
                .values(
                    user_id=user_id,
                    scope=scope,
                    key=key,
                    request_hash=request_hash,
                    state="in_flight",
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["user_id", "scope", "key"])
                .returning(IdempotencyKey.id)
            )
            if claimed is not None:
                claimed_id: uuid.UUID = claimed
                return claimed_id
            existing = (
                await session.execute(
                    select(IdempotencyKey).where(
                        IdempotencyKey.user_id == user_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
                    )
                )
            ).scalar_one_or_none()
        if existing is None:
            raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_flight")
        if existing.request_hash != request_hash:
            raise InvalidInput(
                "this Idempotency-Key was used with a different request", code="idempotency_key_mismatch"
            )
        if existing.state != "done" or existing.status_code is None or existing.response_body is None:
            raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_flight")
        return StoredResponse(existing.status_code, existing.response_body, replayed=True)
