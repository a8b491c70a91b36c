"""Connections currently open on this gateway process, indexed by user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

from realtime.frames import ServerFrame, encode_frame


@dataclass(slots=True, eq=False)
class Connection:
    """One authenticated socket and who is on the other end of it."""

    websocket: ServerConnection
    user_id: uuid.UUID
    session_id: uuid.UUID
    client: str | None
    # Set when the socket was opened on /v1/chats/{chat_id}/ws.
    chat_id: uuid.UUID | None = None
    roles: tuple[str, ...] = ()

    async def send(self, frame: ServerFrame) -> None:
        """Write ``frame`` as one text message."""
        await self.websocket.send(encode_frame(frame), text=True)


class ConnectionRegistry:
    """The open connections of this process; a user may have several (devices, tabs)."""

    def __init__(self) -> None:
        self._by_user: dict[uuid.UUID, set[Connection]] = {}
        self._count = 0

    def add(self, connection: Connection) -> None:
        """Track ``connection`` until :meth:`discard`."""
        bucket = self._by_user.setdefault(connection.user_id, set())
        if connection not in bucket:
            bucket.add(connection)
            self._count += 1

    def discard(self, connection: Connection) -> None:
        """Stop tracking ``connection``; a no-op if it is not tracked."""
        bucket = self._by_user.get(connection.user_id)
        if bucket is None or connection not in bucket:
            return
        bucket.remove(connection)
        self._count -= 1
        if not bucket:
            # Drop empty buckets so a churn of users does not grow the dict forever.
            del self._by_user[connection.user_id]

    def of_user(self, user_id: uuid.UUID) -> frozenset[Connection]:
        """The open connections of ``user_id`` (a snapshot, safe to iterate while sending)."""
        return frozenset(self._by_user.get(user_id, ()))

    def users(self) -> frozenset[uuid.UUID]:
        """The users with at least one open connection."""
        return frozenset(self._by_user)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Connection]:
        # A snapshot, since sends may yield and let connections come and go.
        return iter([c for bucket in self._by_user.values() for c in bucket])
