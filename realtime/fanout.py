"""NATS → sockets: reference-counted subscriptions per chat and per user, typing expiry.

Each chat with at least one local member connected has one NATS subscription on
``chat.<chat_id>``; every event on it is decoded once, turned into one server frame,
encoded once, and offered to each interested connection's queue. Each user with a
socket here has one subscription on ``user.<user_id>`` for membership changes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from realtime.frames import (
    ChatJoined,
    ChatLeft,
    ChatUpdate,
    MessageDeleted,
    MessageNew,
    MessageUpdate,
    PresenceChanged,
    ReadReceipt,
    SystemModeration,
    TypingStarted,
    TypingStopped,
    encode_frame,
)
from realtime.registry import Connection
from shared import ids
from shared.bus import (
    ChatLiveEvent,
    ChatMembershipChanged,
    ChatMessageDeleted,
    ChatMessageEdited,
    ChatMessagePosted,
    ChatModerated,
    ChatPresence,
    ChatRead,
    ChatRoomMembershipChanged,
    ChatTyping,
    ChatUpdated,
    UserPresence,
    chat_subject,
    decode_live_event,
    user_subject,
)

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("realtime.fanout")

# Newest presence stamp seen per (user, chat or None); cleared when it grows past this.
PRESENCE_STAMPS_MAX = 100_000


@dataclass(slots=True, eq=False)
class _Topic:
    """One NATS subscription and the local connections that want its events."""

    connections: set[Connection] = field(default_factory=set)
    subscription: Subscription | None = None


class ChatFanout:
    """Keeps NATS subscriptions in step with the connections that need them and delivers events."""

    def __init__(self, nats: NatsClient) -> None:
        self._nats = nats
        self._chats: dict[uuid.UUID, _Topic] = {}
        self._users: dict[uuid.UUID, _Topic] = {}
        self._typing: dict[tuple[uuid.UUID, str], asyncio.TimerHandle] = {}
        self._presence_stamps: dict[tuple[str, str | None], int] = {}
        self.delivered = 0

    @property
    def subscriptions(self) -> int:
        """How many NATS subscriptions this process holds."""
        return len(self._chats) + len(self._users)

    async def watch_user(self, connection: Connection) -> None:
        """Receive membership changes of the connection's user."""
        subject = user_subject(ids.encode(ids.Prefix.USER, connection.user_id))
        await self._join(self._users, connection.user_id, connection, subject, self._on_user_event)

    async def join_chat(self, connection: Connection, chat_id: uuid.UUID) -> None:
        """Deliver ``chat_id``'s events to ``connection`` from now on."""
        if chat_id in connection.chats:
            return
        connection.chats.add(chat_id)
        subject = chat_subject(ids.encode(ids.Prefix.CHAT, chat_id))
        await self._join(self._chats, chat_id, connection, subject, self._on_chat_event)

    async def leave_chat(self, connection: Connection, chat_id: uuid.UUID) -> None:
        """Stop delivering ``chat_id``'s events to ``connection``."""
        connection.chats.discard(chat_id)
        await self._leave(self._chats, chat_id, connection)

    async def forget(self, connection: Connection) -> None:
        """Drop every subscription reference ``connection`` holds (it closed)."""
        for chat_id in list(connection.chats):
            await self.leave_chat(connection, chat_id)
        await self._leave(self._users, connection.user_id, connection)

    async def _join(
        self,
        topics: dict[uuid.UUID, _Topic],
        key: uuid.UUID,
        connection: Connection,
        subject: str,
        callback: Callable[[Msg], Awaitable[None]],
    ) -> None:
        topic = topics.get(key)
        if topic is not None:
            topic.connections.add(connection)
            return
        topic = topics[key] = _Topic({connection})
        subscription = await self._nats.subscribe(subject, cb=callback)
        if topics.get(key) is topic and topic.connections:
            topic.subscription = subscription
        else:
            # Everyone left while the subscription was being made.
            await subscription.unsubscribe()

    async def _leave(self, topics: dict[uuid.UUID, _Topic], key: uuid.UUID, connection: Connection) -> None:
        topic = topics.get(key)
        if topic is None:
            return
        topic.connections.discard(connection)
        if not topic.connections:
            del topics[key]
            if topic.subscription is not None:
                try:
                    await topic.subscription.unsubscribe()
                except Exception as exc:
                    # A closed or reconnecting client drops its subscriptions anyway.
                    log.debug("fanout.unsubscribe_failed", error=type(exc).__name__)

    async def _on_chat_event(self, msg: Msg) -> None:
        try:
            event = decode_live_event(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("fanout.bad_event", subject=msg.subject, error=str(exc))
            return
        frame = _frame_for(event)
        if frame is None:
            return
        if frame.chat_id is None:
            return
        chat_id = ids.decode(ids.Prefix.CHAT, frame.chat_id)
        if isinstance(event, ChatTyping):
            self._track_typing(chat_id, event)
        elif isinstance(event, ChatPresence) and self._stale_presence(event.user_id, event.chat_id, event.stamp):
            return
        seq = frame.seq if isinstance(frame, MessageNew) else None
        if isinstance(event, ChatPresence):
            # A user's own sockets need no news of their own presence.
            self._deliver(chat_id, seq, encode_frame(frame), skip_user=ids.decode(ids.Prefix.USER, event.user_id))
        else:
            self._deliver(chat_id, seq, encode_frame(frame))

    def _deliver(self, chat_id: uuid.UUID, seq: int | None, data: bytes, skip_user: uuid.UUID | None = None) -> None:
        topic = self._chats.get(chat_id)
        if topic is None:
            return
        for connection in list(topic.connections):
            if connection.user_id != skip_user:
                connection.deliver(chat_id, seq, data)
        self.delivered += len(topic.connections)

    def _stale_presence(self, user_id: str, chat_id: str | None, stamp: int) -> bool:
        """Whether a newer presence change of ``user_id`` (for this chat) already went out from here.

        Announcements of one user come from whichever gateway saw the change and may cross on
        the way; the stamp keeps a late "online" from overriding the "offline" that followed it.
        """
        if not stamp:
            return False
        key = (user_id, chat_id)
        if stamp <= self._presence_stamps.get(key, 0):
            return True
        if len(self._presence_stamps) >= PRESENCE_STAMPS_MAX:
            self._presence_stamps.clear()
        self._presence_stamps[key] = stamp
        return False

    def _track_typing(self, chat_id: uuid.UUID, event: ChatTyping) -> None:
        """Typing lapses on its own: without a renewal, every local socket gets ``typing.stop``."""
        key = (chat_id, event.user_id)
        previous = self._typing.pop(key, None)
        if previous is not None:
            previous.cancel()
        if event.typing:

            def lapse() -> None:
                self._typing.pop(key, None)
                stop = TypingStopped(chat_id=event.chat_id, user_id=event.user_id)
                self._deliver(chat_id, None, encode_frame(stop))

            self._typing[key] = asyncio.get_running_loop().call_later(event.expires_in_ms / 1000, lapse)

    async def _on_user_event(self, msg: Msg) -> None:
        try:
            event = _user_event_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("fanout.bad_event", subject=msg.subject, error=str(exc))
            return
        if isinstance(event, LiveNotification):
            # The event already is the client frame: forward its bytes to every socket of the user.
            topic = self._users.get(ids.decode(ids.Prefix.USER, msg.subject.rsplit(".", 1)[1]))
            for connection in list(topic.connections if topic else ()):
                connection.push(msg.data)
            return
        if isinstance(event, UserPresence):
            self._friend_presence(msg.subject, event)
            return
        user_id = ids.decode(ids.Prefix.USER, event.user_id)
        chat_id = ids.decode(ids.Prefix.CHAT, event.chat_id)
        topic = self._users.get(user_id)
        if topic is None:
            return
        for connection in list(topic.connections):
            if connection.chat_id is not None and connection.chat_id != chat_id:
                continue
            if event.member and chat_id not in connection.chats:
                await self.join_chat(connection, chat_id)
                connection.push(encode_frame(ChatJoined(chat_id=event.chat_id)))
            elif not event.member and chat_id in connection.chats:
                await self.leave_chat(connection, chat_id)
                connection.push(encode_frame(ChatLeft(chat_id=event.chat_id)))

    def _friend_presence(self, subject: str, event: UserPresence) -> None:
        """A friend of the subject's user came or went: tell that user's general sockets."""
        recipient = subject.rsplit(".", 1)[1]
        if self._stale_presence(event.user_id, f"friend:{recipient}", event.stamp):
            return
        topic = self._users.get(ids.decode(ids.Prefix.USER, recipient))
        if topic is None:
            return
        data = encode_frame(PresenceChanged(user_id=event.user_id, status=event.status))
        for connection in list(topic.connections):
            # A socket opened on one chat carries that chat only.
            if connection.chat_id is None:
                connection.push(data)


class LiveNotification(msgspec.Struct, frozen=True, tag="notification.new", tag_field="type"):
    """A notification for the user, published by the worker; only its tag is read here."""

    notification: msgspec.Raw


_user_event_decoder = msgspec.json.Decoder(
    ChatMembershipChanged | LiveNotification | ChatRoomMembershipChanged | UserPresence
)


ChatFrame = (
    MessageNew
    | MessageUpdate
    | MessageDeleted
    | TypingStarted
    | TypingStopped
    | ReadReceipt
    | PresenceChanged
    | SystemModeration
    | ChatUpdate
)


def _frame_for(event: ChatLiveEvent) -> ChatFrame | None:
    """The server frame a live event becomes on every socket of its chat."""
    match event:
        case ChatMessagePosted():
            return MessageNew(chat_id=event.message.chat_id, seq=event.message.seq, message=event.message)
        case ChatMessageEdited():
            return MessageUpdate(chat_id=event.message.chat_id, seq=event.message.seq, message=event.message)
        case ChatMessageDeleted():
            return MessageDeleted(chat_id=event.message.chat_id, seq=event.message.seq, message=event.message)
        case ChatTyping():
            if event.typing:
                return TypingStarted(chat_id=event.chat_id, user_id=event.user_id, expires_in_ms=event.expires_in_ms)
            return TypingStopped(chat_id=event.chat_id, user_id=event.user_id)
        case ChatRead():
            return ReadReceipt(chat_id=event.chat_id, user_id=event.user_id, message_id=event.message_id, seq=event.seq)
        case ChatPresence():
            return PresenceChanged(chat_id=event.chat_id, user_id=event.user_id, status=event.status)
        case ChatMembershipChanged():
            return None
        case ChatUpdated():
            return ChatUpdate(
                chat_id=event.chat_id, title=event.title, read_only=event.read_only, updated_by=event.updated_by
            )
        case ChatModerated():
            return SystemModeration(
                chat_id=event.chat_id,
                message_id=event.message_id,
                seq=event.seq,
                action=event.action,
                moderator_id=event.moderator_id,
            )
