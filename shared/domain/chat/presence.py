"""Presence: a user is online while at least one of their sockets is open on any gateway.

The Redis sorted set ``presence:<user_uuid>`` holds one member per open socket (or, for the
older per-process API, per gateway instance), scored with an expiry time. Gateways refresh the
scores on their heartbeat and remove a socket's member when it closes; a crashed gateway's
members simply expire. Online means: some member's expiry is still in the future.

Opening and closing a socket are single Lua scripts, so "was this the first socket?" and
"was this the last one?" are decided atomically even when several gateways race. Each such
transition gets a stamp (milliseconds, strictly increasing per user) that travels with the
``presence`` event, so a receiver can drop an older transition that arrives after a newer one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from sqlalchemy import literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import ChatPresence, Event, UserPresence, chat_subject, encode_event, user_subject
from shared.domain.chat.models import ChatParticipant
from shared.domain.social.models import Friendship

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("shared.chat.presence")

PRESENCE_KEY_PREFIX = "presence:"
STAMP_KEY_SUFFIX = ":stamp"

# Shared by both scripts: the server's clock (seconds as a float, and milliseconds), and a stamp
# larger than the user's previous one even if two transitions fall in the same millisecond.
_LUA_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function next_stamp()
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if ms <= last then ms = last + 1 end
  redis.call('SET', KEYS[2], string.format('%.0f', ms), 'PX', ARGV[3])
  return ms
end
"""

# KEYS: set, stamp key. ARGV: member, ttl seconds, key ttl ms. Returns the stamp if the user was
# offline before this socket, else 0. Expired members (a crashed gateway's) are pruned first.
_ARRIVE = (
    _LUA_CLOCK
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZCOUNT', KEYS[1], now, '+inf')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if live > 0 then return 0 end
return next_stamp()
"""
)

# KEYS: set, stamp key. ARGV: member, unused, key ttl ms. Returns the stamp if this was the user's
# last live socket, else 0 (also 0 if the member was already gone: nothing changed).
_LEAVE = (
    _LUA_CLOCK
    + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZCOUNT', KEYS[1], now, '+inf') > 0 then return 0 end
return next_stamp()
"""
)


def presence_key(user_id: uuid.UUID) -> str:
    """The Redis key holding ``user_id``'s live sockets (or gateway members)."""
    return f"{PRESENCE_KEY_PREFIX}{user_id}"


def _stamp_key(user_id: uuid.UUID) -> str:
    return f"{presence_key(user_id)}{STAMP_KEY_SUFFIX}"


def _key_ttl_ms(ttl_s: float) -> int:
    # The key outlives its members by the TTL so an abandoned set cleans itself up.
    return max(int(ttl_s * 2000), 1000)


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A user came online (first socket) or went offline (last socket), with its ordering stamp."""

    user_id: uuid.UUID
    online: bool
    stamp: int


class Presence:
    """Reads and writes the presence sorted sets."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._arrive = redis.register_script(_ARRIVE)
        self._leave = redis.register_script(_LEAVE)

    async def socket_opened(self, member: str, user_id: uuid.UUID, ttl_s: float) -> PresenceChange | None:
        """Record the socket ``member`` of ``user_id``; the change if it is the user's first live one."""
        stamp = int(
            await self._arrive(
                keys=[presence_key(user_id), _stamp_key(user_id)], args=[member, ttl_s, _key_ttl_ms(ttl_s)]
            )
        )
        return PresenceChange(user_id, online=True, stamp=stamp) if stamp else None

    async def socket_closed(self, member: str, user_id: uuid.UUID, ttl_s: float) -> PresenceChange | None:
        """Forget the socket ``member``; the change if it was the user's last live one."""
        stamp = int(
            await self._leave(keys=[presence_key(user_id), _stamp_key(user_id)], args=[member, 0, _key_ttl_ms(ttl_s)])
        )
        return PresenceChange(user_id, online=False, stamp=stamp) if stamp else None

    async def refresh_sockets(self, sockets: Iterable[tuple[uuid.UUID, str]], ttl_s: float) -> None:
        """Push the expiry of each open ``(user_id, member)`` socket ``ttl_s`` seconds ahead.

        ``XX``: a socket that closed since the caller listed it stays removed instead of coming
        back as a ghost that keeps its user online until it expires.
        """
        expires = time.time() + ttl_s
        key_ttl_ms = _key_ttl_ms(ttl_s)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, member in sockets:
                key = presence_key(user_id)
                pipe.zadd(key, {member: expires}, xx=True)
                pipe.pexpire(key, key_ttl_ms)
            await pipe.execute()

    async def mark_online(self, instance: str, user_ids: Iterable[uuid.UUID], ttl_s: float) -> None:
        """Record that ``instance`` holds sockets of ``user_ids`` for the next ``ttl_s`` seconds."""
        expires = time.time() + ttl_s
        key_ttl_ms = _key_ttl_ms(ttl_s)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                key = presence_key(user_id)
                pipe.zadd(key, {instance: expires})
                pipe.pexpire(key, key_ttl_ms)
            await pipe.execute()

    async def arrive(self, instance: str, user_id: uuid.UUID, ttl_s: float) -> bool:
        """Mark ``user_id`` online on ``instance``; ``True`` if no gateway had them online before."""
        return await self.socket_opened(instance, user_id, ttl_s) is not None

    async def mark_offline(self, instance: str, user_id: uuid.UUID) -> bool:
        """``instance`` holds no more sockets of ``user_id``; ``True`` if no gateway has them online now."""
        await self.socket_closed(instance, user_id, 1.0)
        return not await self.is_online(user_id)

    async def is_online(self, user_id: uuid.UUID) -> bool:
        """Whether some gateway holds an open socket of ``user_id``."""
        live: int = await self._redis.zcount(presence_key(user_id), time.time(), "+inf")
        return live > 0

    async def online_of(self, user_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """The users among ``user_ids`` that are online."""
        users = list(user_ids)
        if not users:
            return set()
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.zcount(presence_key(user_id), now, "+inf")
            counts = await pipe.execute()
        return {user_id for user_id, count in zip(users, counts, strict=True) if count}


class PresenceAnnouncer:
    """Tells a user's chat peers (``chat.<id>``) and friends (``user.<id>``) about a presence change."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], nats: NatsClient) -> None:
        self._sessions = sessions
        self._nats = nats

    async def audience(self, user_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """The chats ``user_id`` is in and their friends, in one round trip."""
        chats = select(ChatParticipant.chat_id.label("id"), literal(False).label("friend")).where(
            ChatParticipant.user_id == user_id
        )
        low = select(Friendship.user_high_id, literal(True)).where(Friendship.user_low_id == user_id)
        high = select(Friendship.user_low_id, literal(True)).where(Friendship.user_high_id == user_id)
        async with self._sessions() as session:
            rows = (await session.execute(union_all(chats, low, high))).all()
        chat_ids = [row[0] for row in rows if not row[1]]
        friend_ids = [row[0] for row in rows if row[1]]
        return chat_ids, friend_ids

    async def announce(self, change: PresenceChange) -> tuple[int, int]:
        """Publish ``change`` to every chat and friend of its user; ``(chats, friends)`` reached."""
        chat_ids, friend_ids = await self.audience(change.user_id)
        user = ids.encode(ids.Prefix.USER, change.user_id)
        status = "online" if change.online else "offline"
        events: list[tuple[str, Event]] = [
            (
                chat_subject(ids.encode(ids.Prefix.CHAT, chat_id)),
                ChatPresence(
                    chat_id=ids.encode(ids.Prefix.CHAT, chat_id), user_id=user, status=status, stamp=change.stamp
                ),
            )
            for chat_id in chat_ids
        ]
        friend_event = encode_event(UserPresence(user_id=user, status=status, stamp=change.stamp))
        # publish() only buffers; the client's flusher sends them together.
        for subject, event in events:
            await self._nats.publish(subject, encode_event(event))
        for friend_id in friend_ids:
            await self._nats.publish(user_subject(ids.encode(ids.Prefix.USER, friend_id)), friend_event)
        return len(chat_ids), len(friend_ids)
