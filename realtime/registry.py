"""Connections currently open on this gateway process, indexed by user."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from realtime.frames import ServerFrame, encode_frame

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("realtime.registry")

DEFAULT_QUEUE_FRAMES = 1024
DEFAULT_QUEUE_BYTES = 4 * 1024 * 1024
# Frames go straight to the socket while its kernel-side buffer holds less than this; beyond it
# the client is behind and frames wait in the bounded queue instead.
DIRECT_WRITE_LIMIT = 256 * 1024


@dataclass(slots=True, eq=False)
class Connection:
    """One authenticated socket, who is on the other end of it, and its bounded outgoing queue.

    A frame is written at once when nothing is queued and the socket keeps up (the cheap path
    ``websockets.broadcast`` takes); otherwise it waits in a bounded queue drained by one writer
    task, so a slow client only fills its own queue. When that overflows the socket is closed
    with 1013 and the client resumes later.
    """

    websocket: ServerConnection
    user_id: uuid.UUID
    session_id: uuid.UUID
    client: str | None
    # Set when the socket was opened on /v1/chats/{chat_id}/ws.
    chat_id: uuid.UUID | None = None
    roles: tuple[str, ...] = ()
    queue_frames: int = DEFAULT_QUEUE_FRAMES
    # Frames are up to 64 KiB, so a frame count alone would let one client pin 64 MiB.
    queue_bytes: int = DEFAULT_QUEUE_BYTES
    # Chats whose frames this connection receives.
    chats: set[uuid.UUID] = field(default_factory=set)
    # This socket's member in its user's presence set (unique per socket, across gateways).
    presence_member: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Until the ack (and a resume's replay) is out, live frames wait here: (chat_id or None, seq or None, data).
    held: list[tuple[uuid.UUID | None, int | None, bytes]] | None = None
    _queue: asyncio.Queue[bytes] | None = None
    _writer: asyncio.Task[None] | None = None
    _closing: asyncio.Task[None] | None = None
    _writing: bool = False
    _queued_bytes: int = 0

    def start(self) -> None:
        """Start the writer task (call once, before the first frame)."""
        self._queue = asyncio.Queue(self.queue_frames)
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def stop(self) -> None:
        """Stop the writer task."""
        for task in (self._writer, self._closing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    async def send(self, frame: ServerFrame) -> None:
        """Send ``frame``, waiting for room in the queue (for replies and replays the client awaits)."""
        assert self._queue is not None
        data = encode_frame(frame)
        if not self._write_now(data):
            await self._queue.put(data)
            self._queued_bytes += len(data)

    def offer(self, data: bytes) -> None:
        """Send an encoded frame without waiting; a full queue closes the socket with 1013."""
        assert self._queue is not None
        if self._write_now(data) or self._closing is not None:
            return
        if self._queued_bytes + len(data) <= self.queue_bytes:
            try:
                self._queue.put_nowait(data)
                self._queued_bytes += len(data)
                return
            except asyncio.QueueFull:
                pass
        self._close_slow()

    def _close_slow(self) -> None:
        """Give up on a client that does not keep up: drop its backlog and close with 1013."""
        assert self._queue is not None
        log.info(
            "connection.slow_consumer",
            user_id=str(self.user_id),
            queued_frames=self._queue.qsize(),
            queued_bytes=self._queued_bytes,
            buffered_bytes=self.websocket.transport.get_write_buffer_size(),
        )
        # The client resumes from its last seq anyway; holding its backlog would only cost memory.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued_bytes = 0
        self._closing = asyncio.get_running_loop().create_task(
            self.websocket.close(CloseCode.TRY_AGAIN_LATER, "slow_consumer")
        )

    def _write_now(self, data: bytes) -> bool:
        """Write ``data`` straight to the socket if that keeps the frame order and the client keeps up."""
        assert self._queue is not None
        if self._writing or not self._queue.empty() or self._closing is not None:
            return False
        if self.websocket.transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT:
            return False
        # A failure means the socket is closing; its handler cleans up.
        with contextlib.suppress(ExceptionGroup):
            broadcast([self.websocket], data, raise_exceptions=True, text=True)
        return True

    def deliver(self, chat_id: uuid.UUID, seq: int | None, data: bytes) -> None:
        """A live frame of ``chat_id``: held back during a resume, else queued."""
        if self.held is not None:
            self.held.append((chat_id, seq, data))
        else:
            self.offer(data)

    def push(self, data: bytes) -> None:
        """A live frame outside any chat's sequence (notifications, membership, presence): held like chat frames."""
        if self.held is not None:
            self.held.append((None, None, data))
        else:
            self.offer(data)

    def release(self, replayed_up_to: dict[uuid.UUID, int]) -> None:
        """End a resume: queue the held frames, minus messages the replay already sent."""
        held, self.held = self.held or [], None
        for chat_id, seq, data in held:
            if chat_id is not None and seq is not None and seq <= replayed_up_to.get(chat_id, -1):
                continue
            self.offer(data)

    async def _write(self) -> None:
        assert self._queue is not None
        try:
            while True:
                data = await self._queue.get()
                self._queued_bytes -= len(data)
                # Set before the first await, so offer() queues behind this frame instead of overtaking it.
                self._writing = True
                try:
                    await self.websocket.send(data, text=True)
                finally:
                    self._writing = False
        except ConnectionClosed:
            pass


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
