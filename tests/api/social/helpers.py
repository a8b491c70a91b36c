"""Assertions and database probes the social-graph tests share."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.bus import OutboxRow


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The problem+json body of ``response``, checked for status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def uid(public_id: str) -> Any:
    """The UUID behind a ``usr_`` id."""
    return ids.decode(ids.Prefix.USER, public_id)


async def count(db: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    """Rows of ``model`` matching ``where``."""
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def events(db: async_sessionmaker[AsyncSession], event_type: str) -> list[bus.DomainEvent]:
    """Every outbox event of ``event_type``, oldest first."""
    async with db() as session:
        rows = await session.scalars(select(OutboxRow).where(OutboxRow.event_type == event_type).order_by(OutboxRow.id))
        return [bus.decode_event(msgspec.json.encode(row.payload)) for row in rows]
