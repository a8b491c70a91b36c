"""The one chat service behind REST and the gateway: chats, members, messages, typing, read state.

Writes commit first and publish after: each stored change also gets an outbox row, and right after
the commit the service publishes the event on the chat's live subject and (in a batch, off the
request path) marks the row published. A crash or a NATS outage in between leaves the row unmarked;
the worker's relay publishes such rows on the same subject once they are older than
``SELF_PUBLISH_GRACE_SECONDS``, and clients drop the rare duplicate by message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import structlog
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from sqlalchemy import (
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import (
    OUTBOX_CHANNEL,
    ChatMembershipChanged,
    ChatMessageDeleted,
    ChatMessageEdited,
    ChatMessagePosted,
    ChatPresence,
    ChatRead,
    ChatTyping,
    ChatUpdated,
    Event,
    encode_event,
    live_subject,
    record,
)
from shared.clock import utcnow
from shared.config import Settings
from shared.db.fastread import SessionStatements, Statements
from shared.domain.chat import rooms
from shared.domain.chat.models import (
    MANAGED_TYPES,
    Chat,
    ChatMessage,
    ChatParticipant,
    ChatType,
    ModerationStatus,
    ParticipantRole,
)
from shared.domain.chat.presence import Presence
from shared.domain.chat.schemas import (
    MAX_GROUP_MEMBERS,
    ChatView,
    CreateChatRequest,
    Delivery,
    HistoryMessage,
    Message,
    MessageAccepted,
    MessageContent,
    MessageHistory,
    MessageRemoved,
    Paging,
    Participant,
    ReadState,
    SendMessageRequest,
    TypingAccepted,
    UpdateChatRequest,
)
from shared.domain.moderation.blocklist import Blocklist, BlocklistCache
from shared.domain.moderation.cases import BLOCKLIST_REASON_PREFIX, write_audit
from shared.domain.moderation.models import AuditAction, BlocklistMode
from shared.domain.social.services import is_blocked_between
from shared.domain.users.models import AccountStatus, User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.ratelimit import RateLimiter

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("chat")

EDIT_WINDOW = timedelta(minutes=15)
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 100
CHATS_DEFAULT_LIMIT = 20
CHATS_MAX_LIMIT = 100
REPLAY_BATCH = 200
NATS_MSG_ID_HEADER = "Nats-Msg-Id"
PUBLISH_TIMEOUT_S = 2.0
STAMP_GATHER_S = 0.05


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Per-user message rate and typing lifetime."""

    message_rate_limit: int = 20
    message_rate_window_seconds: int = 10
    typing_ttl_ms: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatLimits:
        """The limits configured for this deployment."""
        return cls(
            message_rate_limit=settings.chat_message_rate_limit,
            message_rate_window_seconds=settings.chat_message_rate_window_seconds,
            typing_ttl_ms=settings.chat_typing_ttl_ms,
        )


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The outcome of a send: the stored message and whether this call stored it (``False`` for a resend)."""

    accepted: MessageAccepted
    message: Message
    created: bool


class ChatCursor(msgspec.Struct, frozen=True):
    """Sort key of the chat list: most recent activity first, id breaks ties."""

    at: datetime
    id: uuid.UUID


def ack_token(message_id: uuid.UUID) -> str:
    """The opaque token acknowledging a stored message (stable, so a resend gets the same one)."""
    return "ack_" + ids.encode(ids.Prefix.MESSAGE, message_id).partition("_")[2]


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """The canonical key of the pair ``{a, b}``, the same in either order."""
    low, high = sorted((a, b))
    return f"{low}:{high}"


def _parse_body_id(prefix: ids.Prefix, value: str, field: str) -> uuid.UUID:
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError(field, f"not a valid {prefix.value}_ id")]) from None


def _check_content(content: MessageContent, field: str = "content") -> dict[str, Any]:
    """The content as stored; blank messages and foreign media ids are refused."""
    if not content.text.strip() and not content.attachments:
        raise InvalidInput(errors=[FieldError(f"{field}.text", "a message needs text or an attachment")])
    for index, attachment in enumerate(content.attachments):
        _parse_body_id(ids.Prefix.MEDIA, attachment.media_id, f"{field}.attachments[{index}].media_id")
    stored: dict[str, Any] = msgspec.to_builtins(content)
    return stored


def message_view(row: ChatMessage) -> Message:
    """A stored message as readers see it; a tombstone has no content."""
    deleted = row.deleted_at is not None
    return Message(
        id=ids.encode(ids.Prefix.MESSAGE, row.id),
        chat_id=ids.encode(ids.Prefix.CHAT, row.chat_id),
        seq=row.seq,
        sender_id=ids.encode(ids.Prefix.USER, row.sender_id),
        client_message_id=row.client_message_id,
        content=None if deleted or row.content is None else msgspec.convert(row.content, MessageContent),
        sent_at=row.sent_at,
        edited_at=row.edited_at,
        deleted=deleted,
        deleted_at=row.deleted_at,
        reply_to=ids.encode(ids.Prefix.MESSAGE, row.reply_to_id) if row.reply_to_id else None,
        mentions=[ids.encode(ids.Prefix.USER, m) for m in row.mentions],
        moderation_status=row.moderation_status,
    )


def _accepted(message: Message, row_id: uuid.UUID) -> MessageAccepted:
    return MessageAccepted(
        message_id=message.id,
        ack_token=ack_token(row_id),
        client_message_id=message.client_message_id,
        chat_id=message.chat_id,
        seq=message.seq,
    )


# The whole send in one statement, run in autocommit: its implicit transaction commits the message and
# its outbox row together or neither. The chat's row lock (the UPDATE) is held until that commit, so
# seqs are gap-free and in commit order. Any failed condition allocates nothing and returns no row;
# the caller then finds out which (membership, reply, mentions, read-only room, block, or a resend).
# Two resends racing past the resend check meet the unique index: the statement fails as a whole,
# seq included, and the caller answers with the original.
_POSTED_TYPE = str(ChatMessagePosted.__struct_config__.tag)
_SEND_SQL = """
WITH allocated AS (
    UPDATE chats SET last_seq = last_seq + 1, last_activity_at = $8
    WHERE id = $1
      AND EXISTS (SELECT 1 FROM chat_participants WHERE chat_id = $1 AND user_id = $2)
      -- A block either way closes a direct chat to both sides.
      AND NOT (type = 'direct' AND EXISTS (
            SELECT 1 FROM chat_participants other
            JOIN blocks b ON (b.blocker_id = other.user_id AND b.blocked_id = $2)
                          OR (b.blocker_id = $2 AND b.blocked_id = other.user_id)
            WHERE other.chat_id = $1 AND other.user_id <> $2))
      -- A read-only room takes messages from its moderators only.
      AND (NOT read_only
           OR EXISTS (SELECT 1 FROM chat_participants
                      WHERE chat_id = $1 AND user_id = $2 AND role = 'admin')
           OR EXISTS (SELECT 1 FROM club_memberships cm
                      WHERE cm.club_id = chats.club_id AND cm.user_id = $2 AND cm.status = 'active'
                        AND cm.role IN ('owner', 'admin', 'moderator')))
      -- A resend of a stored message allocates nothing.
      AND NOT EXISTS (SELECT 1 FROM chat_messages WHERE chat_id = $1 AND sender_id = $2 AND client_message_id = $4)
      AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM chat_messages WHERE id = $6::uuid AND chat_id = $1))
      AND cardinality($7::uuid[]) = (SELECT count(*) FROM chat_participants WHERE chat_id = $1 AND user_id = ANY($7))
    RETURNING last_seq
), read_own AS (
    -- Sending is reading.
    UPDATE chat_participants SET last_read_seq = GREATEST(last_read_seq, (SELECT last_seq FROM allocated))
    WHERE chat_id = $1 AND user_id = $2 AND EXISTS (SELECT 1 FROM allocated)
), inserted AS (
    INSERT INTO chat_messages
        (id, chat_id, seq, sender_id, client_message_id, content, reply_to_id, mentions, sent_at, moderation_status)
    SELECT $3, $1, last_seq, $2, $4, $5::text::jsonb, $6, $7, $8, $9 FROM allocated
    RETURNING seq
), outboxed AS (
    -- The live event, seq filled in; a flagged message is not fanned out.
    INSERT INTO outbox (id, event_type, payload)
    SELECT $10, $14,
           jsonb_set($11::text::jsonb, '{message,seq}', to_jsonb(seq))
    FROM inserted WHERE $13::text IS NULL
), flagged AS (
    -- A flagged message waits hidden in a case without a reporter, for moderators to review.
    INSERT INTO moderation_cases (id, chat_id, message_id, reporter_id, reason)
    SELECT $12, $1, $3, NULL, $13 FROM inserted WHERE $13::text IS NOT NULL
)
SELECT seq FROM inserted
"""


# Stamps a batch and, in the same implicit transaction, wakes the relay: it still queues these rows'
# jobs (badges, offline notifications).
_STAMP_SQL = """
WITH stamped AS (
    UPDATE outbox SET live_published_at = now() WHERE id = ANY($1::uuid[]) AND live_published_at IS NULL
)
SELECT pg_notify($2, '')
"""


class PublishedStamper:
    """Marks self-published outbox rows as published, in batches, off the request path.

    Each batch first flushes NATS (so the events have left this process), then stamps the rows
    in one statement. If either fails the rows stay unmarked and the relay publishes them
    after the grace period; clients drop the duplicate by message id.
    """

    def __init__(self, statements: Statements, nats: NatsClient) -> None:
        self._statements = statements
        self._nats = nats
        self._pending: list[uuid.UUID] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, row_ids: Iterable[uuid.UUID]) -> None:
        """Stamp these rows soon."""
        self._pending.extend(row_ids)
        if self._closed:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="chat-outbox-stamper")
        self._wake.set()

    async def close(self) -> None:
        """Stamp what is pending and stop."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stamp()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Let a burst gather, so one statement (one commit) stamps it; the relay waits seconds anyway.
            await asyncio.sleep(STAMP_GATHER_S)
            self._wake.clear()
            await self._stamp()

    async def _stamp(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._nats.flush(timeout=PUBLISH_TIMEOUT_S)  # type: ignore[arg-type]
            await self._statements.fetchrow(_STAMP_SQL, batch, OUTBOX_CHANNEL)
        except Exception as exc:
            log.warning("chat.stamp_deferred_to_relay", rows=len(batch), error=f"{type(exc).__name__}: {exc}")


class ChatService:
    """Chats, participants and messages; the REST API and the gateway both call this."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        nats: NatsClient,
        limits: ChatLimits | None = None,
        clock: Callable[[], datetime] = utcnow,
        *,
        statements: Statements | None = None,
        blocklist_cache: BlocklistCache | None = None,
    ) -> None:
        """``statements`` runs the hot single statements (a :class:`FastReads` in the processes; tests may
        leave it out); ``blocklist_cache`` is kept honest by the process's NOTIFY listener."""
        self._sessions = sessions
        self._redis = redis
        self._nats = nats
        self.limits = limits or ChatLimits()
        self._clock = clock
        self._statements: Statements = statements if statements is not None else SessionStatements(sessions)
        self.blocklist = Blocklist(self._statements, blocklist_cache)
        self._stamper = PublishedStamper(self._statements, nats)
        self.presence = Presence(redis)
        self._message_limiter = RateLimiter(
            redis, self.limits.message_rate_limit, window_seconds=self.limits.message_rate_window_seconds
        )

    # Chats and participants

    async def create_chat(self, actor: uuid.UUID, request: CreateChatRequest) -> tuple[ChatView, bool]:
        """A new chat; for a direct chat that exists already, that one and ``False``."""
        others = {_parse_body_id(ids.Prefix.USER, v, "participant_ids") for v in request.participant_ids} - {actor}
        if request.type == "direct":
            if len(others) != 1:
                raise InvalidInput(errors=[FieldError("participant_ids", "a direct chat has exactly one other user")])
            if request.title is not None:
                raise InvalidInput(errors=[FieldError("title", "direct chats have no title")])
        else:
            if request.title is None or not request.title.strip():
                raise InvalidInput(errors=[FieldError("title", "a group chat needs a title")])
            if len(others) + 1 > MAX_GROUP_MEMBERS:
                raise InvalidInput(errors=[FieldError("participant_ids", f"at most {MAX_GROUP_MEMBERS} members")])
        outbox: list[tuple[uuid.UUID, Event]] = []
        async with self._sessions.begin() as session:
            await _require_users(session, others, "participant_ids")
            if request.type == "direct":
                (other,) = others
                if await is_blocked_between(session, actor, other):
                    # As everywhere else, a block makes the other user look absent.
                    raise NotFound("no such user", code="user_not_found")
                chat_id = await session.scalar(
                    pg_insert(Chat)
                    .values(
                        id=ids.uuid7(),
                        type=ChatType.DIRECT.value,
                        direct_key=direct_key(actor, other),
                        created_by=actor,
                    )
                    .on_conflict_do_nothing(index_elements=["direct_key"])
                    .returning(Chat.id)
                )
                created = chat_id is not None
                if chat_id is None:
                    chat_id = await session.scalar(select(Chat.id).where(Chat.direct_key == direct_key(actor, other)))
                    assert chat_id is not None
                else:
                    members = {actor: ParticipantRole.MEMBER, other: ParticipantRole.MEMBER}
                    outbox += await self._add_members(session, chat_id, members, last_read_seq=0)
            else:
                chat_id = ids.uuid7()
                created = True
                session.add(
                    Chat(id=chat_id, type=ChatType.GROUP.value, title=(request.title or "").strip(), created_by=actor)
                )
                await session.flush()
                members = {actor: ParticipantRole.ADMIN} | dict.fromkeys(others, ParticipantRole.MEMBER)
                outbox += await self._add_members(session, chat_id, members, last_read_seq=0)
        await self._publish(outbox)
        return await self.get_chat(actor, chat_id), created

    async def get_chat(self, actor: uuid.UUID, chat_id: uuid.UUID) -> ChatView:
        """One chat of the caller's; 404 if they are not in it."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Chat, ChatParticipant)
                    .join(ChatParticipant, ChatParticipant.chat_id == Chat.id)
                    .where(Chat.id == chat_id, ChatParticipant.user_id == actor)
                )
            ).one_or_none()
            if row is None:
                raise NotFound("no such chat", code="chat_not_found")
            (view,) = await _chat_views(session, actor, [(row[0], row[1])])
        return view

    async def list_chats(self, actor: uuid.UUID, cursor: str | None, limit: int | None) -> Page[ChatView]:
        """The caller's chats, most recently active first."""
        size = _clamp(limit, CHATS_DEFAULT_LIMIT, CHATS_MAX_LIMIT)
        query = (
            select(Chat, ChatParticipant)
            .join(ChatParticipant, ChatParticipant.chat_id == Chat.id)
            .where(ChatParticipant.user_id == actor)
            .order_by(Chat.last_activity_at.desc(), Chat.id.desc())
            .limit(size + 1)
        )
        if cursor is not None:
            key = decode_cursor(cursor, ChatCursor)
            query = query.where(tuple_(Chat.last_activity_at, Chat.id) < tuple_(key.at, key.id))
        async with self._sessions() as session:
            rows = [(r[0], r[1]) for r in (await session.execute(query)).all()]
            views = await _chat_views(session, actor, rows[:size])
        more = len(rows) > size
        next_cursor = (
            encode_cursor(ChatCursor(at=rows[size - 1][0].last_activity_at, id=rows[size - 1][0].id)) if more else None
        )
        return Page(items=views, next_cursor=next_cursor)

    async def update_chat(self, actor: uuid.UUID, chat_id: uuid.UUID, request: UpdateChatRequest) -> ChatView:
        """Rename a group (its admins) or make a group, event or club room read-only or writable again
        (its moderators); the change fans out as ``chat.update`` and a read-only switch is audited.
        Setting what is already set changes nothing and emits nothing."""
        if request.title is None and request.read_only is None:
            raise InvalidInput(
                "nothing to change",
                errors=[FieldError(field, "give title or read_only") for field in ("title", "read_only")],
            )
        title = request.title.strip() if request.title is not None else None
        if title == "":
            raise InvalidInput(errors=[FieldError("title", "must not be blank")])
        outbox: list[tuple[uuid.UUID, Event]] = []
        async with self._sessions.begin() as session:
            # The chat row stays locked until the commit, so concurrent changes apply (and are audited) in turn.
            chat, me = await _membership(session, chat_id, actor, lock_chat=True)
            if chat.type == ChatType.DIRECT:
                raise Conflict("a direct chat has no title or read-only setting", code="direct_chat_unchangeable")
            if title is not None:
                if chat.type in MANAGED_TYPES:
                    raise Conflict("this room is named after its event or club", code="chat_title_managed")
                if me.role != ParticipantRole.ADMIN:
                    raise PermissionDenied("only chat admins rename a group", code="not_chat_admin")
            if request.read_only is not None and not await rooms.is_room_moderator(session, chat, me.role, actor):
                raise PermissionDenied("only the room's moderators change read-only", code="not_room_moderator")
            changed = False
            if title is not None and title != chat.title:
                chat.title = title
                changed = True
            if request.read_only is not None and request.read_only != chat.read_only:
                chat.read_only = request.read_only
                changed = True
                action = AuditAction.CHAT_READ_ONLY_ON if request.read_only else AuditAction.CHAT_READ_ONLY_OFF
                await write_audit(session, actor, action, chat_id, chat_id=chat_id, club_id=chat.club_id)
            if changed:
                await session.flush()
                event = ChatUpdated(
                    chat_id=ids.encode(ids.Prefix.CHAT, chat_id),
                    title=chat.title,
                    read_only=chat.read_only,
                    updated_by=ids.encode(ids.Prefix.USER, actor),
                )
                (row_id,) = await record(session, event, wake_relay=False)
                outbox.append((row_id, event))
        await self._publish(outbox)
        return await self.get_chat(actor, chat_id)

    async def add_participants(self, actor: uuid.UUID, chat_id: uuid.UUID, user_ids: Sequence[str]) -> ChatView:
        """Add users to a group chat (admins only); users already in it are left as they are."""
        new = {_parse_body_id(ids.Prefix.USER, v, "user_ids") for v in user_ids}
        outbox: list[tuple[uuid.UUID, Event]] = []
        async with self._sessions.begin() as session:
            chat, me = await _membership(session, chat_id, actor, lock_chat=True)
            _require_group(chat)
            if me.role != ParticipantRole.ADMIN:
                raise PermissionDenied("only chat admins add members", code="not_chat_admin")
            await _require_users(session, new, "user_ids")
            count = await session.scalar(select(func.count()).where(ChatParticipant.chat_id == chat_id)) or 0
            existing = set(
                (
                    await session.scalars(
                        select(ChatParticipant.user_id).where(
                            ChatParticipant.chat_id == chat_id, ChatParticipant.user_id.in_(new)
                        )
                    )
                ).all()
            )
            joining = new - existing
            if count + len(joining) > MAX_GROUP_MEMBERS:
                raise InvalidInput(errors=[FieldError("user_ids", f"a group has at most {MAX_GROUP_MEMBERS} members")])
            # Newcomers start with nothing unread; the history is still theirs to read.
            outbox += await self._add_members(
                session, chat_id, dict.fromkeys(joining, ParticipantRole.MEMBER), last_read_seq=chat.last_seq
            )
        await self._publish(outbox)
        return await self.get_chat(actor, chat_id)

    async def remove_participant(self, actor: uuid.UUID, chat_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Leave a group chat, or remove someone from it as an admin."""
        outbox: list[tuple[uuid.UUID, Event]] = []
        async with self._sessions.begin() as session:
            chat, me = await _membership(session, chat_id, actor, lock_chat=True)
            _require_group(chat)
            if user_id != actor and me.role != ParticipantRole.ADMIN:
                raise PermissionDenied("only chat admins remove members", code="not_chat_admin")
            removed = await session.scalar(
                delete(ChatParticipant)
                .where(ChatParticipant.chat_id == chat_id, ChatParticipant.user_id == user_id)
                .returning(ChatParticipant.role)
            )
            if removed is None:
                raise NotFound("that user is not in this chat", code="participant_not_found")
            if removed == ParticipantRole.ADMIN:
                await _keep_an_admin(session, chat_id)
            event = ChatMembershipChanged(
                chat_id=ids.encode(ids.Prefix.CHAT, chat_id), user_id=ids.encode(ids.Prefix.USER, user_id), member=False
            )
            (row_id,) = await record(session, event, wake_relay=False)
            outbox.append((row_id, event))
        await self._publish(outbox)

    # Messages

    async def send_message(self, actor: uuid.UUID, chat_id: uuid.UUID, request: SendMessageRequest) -> SentMessage:
        """Store a message (once per client id) and fan it out; a resend returns the first one.

        The hot path is one Redis round trip (the rate limit) and one statement on a raw asyncpg
        connection (:data:`_SEND_SQL`); the blocklist is screened against cached terms first.
        """
        client_message_id = request.client_message_id
        if client_message_id is None:
            raise InvalidInput(errors=[FieldError("client_message_id", "required")])
        if request.sender_id is not None and _parse_body_id(ids.Prefix.USER, request.sender_id, "sender_id") != actor:
            raise PermissionDenied("you can only send as yourself", code="sender_mismatch")
        content = _check_content(request.content)
        mentions = [_parse_body_id(ids.Prefix.USER, v, "mentions") for v in dict.fromkeys(request.mentions)]
        reply_to = _parse_body_id(ids.Prefix.MESSAGE, request.reply_to, "reply_to") if request.reply_to else None
        await self._message_limiter.hit("chat_message", str(actor))
        verdict = await self.blocklist.screen(chat_id, request.content.text)
        if verdict is not None and verdict.mode == BlocklistMode.REJECT:
            async with self._sessions() as session:
                # Not being in the chat, or a bad reply or mention, is what the sender hears first.
                await _check_send_refs(session, chat_id, actor, reply_to, mentions)
            raise InvalidInput(
                "the message contains a blocked term",
                code="message_blocked",
                errors=[FieldError("content.text", "contains a blocked term")],
            )
        status = ModerationStatus.VISIBLE if verdict is None else ModerationStatus.FLAGGED
        message_id = ids.uuid7()
        now = self._clock()
        view = Message(
            id=ids.encode(ids.Prefix.MESSAGE, message_id),
            chat_id=ids.encode(ids.Prefix.CHAT, chat_id),
            seq=0,  # allocated by the statement
            sender_id=ids.encode(ids.Prefix.USER, actor),
            client_message_id=client_message_id,
            content=request.content,
            sent_at=now,
            edited_at=None,
            deleted=False,
            deleted_at=None,
            reply_to=request.reply_to,
            mentions=[ids.encode(ids.Prefix.USER, m) for m in mentions],
            moderation_status=status.value,
        )
        outbox_id = ids.uuid7()
        try:
            row = await self._statements.fetchrow(
                _SEND_SQL,
                chat_id,
                actor,
                message_id,
                client_message_id,
                msgspec.json.encode(content).decode(),
                reply_to,
                mentions,
                now,
                status.value,
                outbox_id,
                encode_event(ChatMessagePosted(message=view)).decode(),
                ids.uuid7(),
                None if verdict is None else BLOCKLIST_REASON_PREFIX + verdict.term,
                _POSTED_TYPE,
            )
        except asyncpg.UniqueViolationError:
            # A concurrent resend of the same client id stored it first.
            return await self._existing_send(actor, chat_id, client_message_id, content)
        if row is None:
            return await self._refused_send(actor, chat_id, client_message_id, content, reply_to, mentions)
        view.seq = row["seq"]
        if verdict is None:
            await self._publish([(outbox_id, ChatMessagePosted(message=view))])
        return SentMessage(accepted=_accepted(view, message_id), message=view, created=True)

    async def _refused_send(
        self,
        actor: uuid.UUID,
        chat_id: uuid.UUID,
        client_message_id: str,
        content: dict[str, Any],
        reply_to: uuid.UUID | None,
        mentions: list[uuid.UUID],
    ) -> SentMessage:
        """Why the send statement stored nothing, checked in the order the sender should hear it; a resend
        of a stored message returns that one."""
        async with self._sessions() as session:
            chat, me = await _check_send_refs(session, chat_id, actor, reply_to, mentions)
            if chat.read_only and not await rooms.is_room_moderator(session, chat, me.role, actor):
                raise PermissionDenied("only moderators post in this room", code="chat_read_only")
            if chat.type == ChatType.DIRECT:
                others = await session.scalars(
                    select(ChatParticipant.user_id).where(
                        ChatParticipant.chat_id == chat_id, ChatParticipant.user_id != actor
                    )
                )
                for other in others.all():
                    if await is_blocked_between(session, actor, other):
                        raise PermissionDenied("this conversation is closed by a block", code="user_blocked")
        return await self._existing_send(actor, chat_id, client_message_id, content)

    async def history(
        self, actor: uuid.UUID, chat_id: uuid.UUID, before: int | None, limit: int | None
    ) -> MessageHistory:
        """Messages older than seq ``before`` (default: the newest), newest first, with read state."""
        size = _clamp(limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)
        if before is not None and before < 1:
            raise InvalidInput(errors=[FieldError("before", "must be at least 1")])
        async with self._sessions() as session:
            await _membership(session, chat_id, actor)
            query = (
                select(ChatMessage)
                .where(ChatMessage.chat_id == chat_id, _visible_to(actor))
                .order_by(ChatMessage.seq.desc())
                .limit(size + 1)
            )
            if before is not None:
                query = query.where(ChatMessage.seq < before)
            rows = list((await session.scalars(query)).all())
            readers = (
                await session.execute(
                    select(ChatParticipant.user_id, ChatParticipant.last_read_seq).where(
                        ChatParticipant.chat_id == chat_id
                    )
                )
            ).all()
        page = rows[:size]
        messages = [
            HistoryMessage(**msgspec.structs.asdict(message_view(row)), delivery=_delivery(row, readers))
            for row in page
        ]
        return MessageHistory(
            messages=messages, paging=Paging(next_before=page[-1].seq if len(rows) > size and page else None)
        )

    async def messages_after(self, actor: uuid.UUID, chat_id: uuid.UUID, after_seq: int) -> list[Message]:
        """Up to :data:`REPLAY_BATCH` messages with seq above ``after_seq``, oldest first (for resume)."""
        async with self._sessions() as session:
            await _membership(session, chat_id, actor)
            rows = (
                await session.scalars(
                    select(ChatMessage)
                    .where(ChatMessage.chat_id == chat_id, ChatMessage.seq > after_seq, _visible_to(actor))
                    .order_by(ChatMessage.seq)
                    .limit(REPLAY_BATCH)
                )
            ).all()
        return [message_view(row) for row in rows]

    async def edit_message(
        self, actor: uuid.UUID, chat_id: uuid.UUID, message_id: uuid.UUID, content: MessageContent
    ) -> Message:
        """Replace the text of one's own message within :data:`EDIT_WINDOW` of sending it."""
        stored = _check_content(content)
        async with self._sessions.begin() as session:
            await _membership(session, chat_id, actor)
            row = await _message_for_update(session, chat_id, message_id)
            if row.deleted_at is not None:
                raise Conflict("the message was deleted", code="message_deleted")
            if row.sender_id != actor:
                raise PermissionDenied("only the sender edits a message", code="not_sender")
            now = self._clock()
            if now - row.sent_at > EDIT_WINDOW:
                raise PermissionDenied("messages can be edited for 15 minutes", code="edit_window_closed")
            # The original was already seen, so an edit cannot be hidden for review: any listed term refuses it.
            if await self.blocklist.screen(chat_id, content.text) is not None:
                raise InvalidInput(
                    "the message contains a blocked term",
                    code="message_blocked",
                    errors=[FieldError("content.text", "contains a blocked term")],
                )
            row.content = stored
            row.edited_at = now
            await session.flush()
            view = message_view(row)
            event = ChatMessageEdited(message=view)
            (outbox_id,) = await record(session, event, wake_relay=False)
        await self._publish([(outbox_id, event)])
        return view

    async def delete_message(self, actor: uuid.UUID, chat_id: uuid.UUID, message_id: uuid.UUID) -> MessageRemoved:
        """Turn a message into a tombstone (its sender or a chat admin); deleting again changes nothing."""
        async with self._sessions.begin() as session:
            chat, me = await _membership(session, chat_id, actor)
            row = await _message_for_update(session, chat_id, message_id)
            public_id = ids.encode(ids.Prefix.MESSAGE, row.id)
            if row.deleted_at is not None:
                by = row.deleted_by or row.sender_id
                return MessageRemoved(
                    status="removed", moderator_id=ids.encode(ids.Prefix.USER, by), message_id=public_id
                )
            if row.sender_id != actor:
                if not await rooms.is_room_moderator(session, chat, me.role, actor):
                    raise PermissionDenied("only the sender or a chat admin deletes a message", code="not_allowed")
                await write_audit(
                    session,
                    actor,
                    AuditAction.MESSAGE_REMOVE,
                    row.id,
                    chat_id=chat_id,
                    club_id=chat.club_id,
                )
            row.content = None
            row.deleted_at = self._clock()
            row.deleted_by = actor
            await session.flush()
            event = ChatMessageDeleted(message=message_view(row))
            (outbox_id,) = await record(session, event, wake_relay=False)
        await self._publish([(outbox_id, event)])
        return MessageRemoved(status="removed", moderator_id=ids.encode(ids.Prefix.USER, actor), message_id=public_id)

    # Typing and read state

    async def set_typing(self, actor: uuid.UUID, chat_id: uuid.UUID, typing: bool) -> TypingAccepted:
        """Mark the caller as typing (for the TTL) or not; only Redis and the live subject see it."""
        async with self._sessions() as session:
            await _membership(session, chat_id, actor)
        ttl = self.limits.typing_ttl_ms
        key = f"typing:{chat_id}:{actor}"
        if typing:
            await self._redis.set(key, 1, px=ttl)
        else:
            await self._redis.delete(key)
        event = ChatTyping(
            chat_id=ids.encode(ids.Prefix.CHAT, chat_id),
            user_id=ids.encode(ids.Prefix.USER, actor),
            typing=typing,
            expires_in_ms=ttl if typing else 0,
        )
        await self._publish_live(event)
        return TypingAccepted(expires_in_ms=ttl)

    async def typing_users(self, chat_id: uuid.UUID) -> list[uuid.UUID]:
        """Who is typing in the chat right now (their TTL has not run out)."""
        prefix = f"typing:{chat_id}:"
        users = []
        async for key in self._redis.scan_iter(match=prefix + "*", count=100):
            raw = key.decode() if isinstance(key, bytes) else str(key)
            users.append(uuid.UUID(raw[len(prefix) :]))
        return users

    async def mark_read(self, actor: uuid.UUID, chat_id: uuid.UUID, message_id: str) -> ReadState:
        """Move the caller's read position up to ``message_id``; it never moves back."""
        target = _parse_body_id(ids.Prefix.MESSAGE, message_id, "message_id")
        async with self._sessions.begin() as session:
            _, me = await _membership(session, chat_id, actor)
            seq = await session.scalar(
                select(ChatMessage.seq).where(ChatMessage.id == target, ChatMessage.chat_id == chat_id)
            )
            if seq is None:
                raise NotFound("no such message in this chat", code="message_not_found")
            moved = await session.scalar(
                update(ChatParticipant)
                .where(
                    ChatParticipant.chat_id == chat_id,
                    ChatParticipant.user_id == actor,
                    ChatParticipant.last_read_seq < seq,
                )
                .values(last_read_seq=seq)
                .returning(ChatParticipant.last_read_seq)
            )
            position = seq if moved is not None else me.last_read_seq
            at = target if moved is not None else await _message_at(session, chat_id, position)
        state = ReadState(
            chat_id=ids.encode(ids.Prefix.CHAT, chat_id),
            user_id=ids.encode(ids.Prefix.USER, actor),
            message_id=ids.encode(ids.Prefix.MESSAGE, at) if at else None,
            seq=position,
        )
        if moved is not None:
            await self._publish_live(
                ChatRead(chat_id=state.chat_id, user_id=state.user_id, message_id=state.message_id, seq=state.seq)
            )
        return state

    # For the gateway

    async def chat_ids_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Every chat the user is in."""
        async with self._sessions() as session:
            return list(
                (await session.scalars(select(ChatParticipant.chat_id).where(ChatParticipant.user_id == user_id))).all()
            )

    async def require_member(self, user_id: uuid.UUID, chat_id: uuid.UUID) -> None:
        """Raise 404 ``chat_not_found`` unless the user is in the chat."""
        async with self._sessions() as session:
            await _membership(session, chat_id, user_id)

    # Internals

    async def _existing_send(
        self, actor: uuid.UUID, chat_id: uuid.UUID, client_message_id: str, content: dict[str, Any]
    ) -> SentMessage:
        async with self._sessions() as session:
            await _membership(session, chat_id, actor)
            row = await session.scalar(
                select(ChatMessage).where(
                    ChatMessage.chat_id == chat_id,
                    ChatMessage.sender_id == actor,
                    ChatMessage.client_message_id == client_message_id,
                )
            )
        if row is None:
            raise Conflict("the message is being stored; retry", code="send_in_progress")
        if row.edited_at is None and row.content is not None and row.content != content:
            raise InvalidInput(
                "this client_message_id was used for another message",
                code="idempotency_key_reused",
                errors=[FieldError("client_message_id", "already used for different content")],
            )
        view = message_view(row)
        return SentMessage(accepted=_accepted(view, row.id), message=view, created=False)

    async def _add_members(
        self,
        session: AsyncSession,
        chat_id: uuid.UUID,
        members: dict[uuid.UUID, ParticipantRole],
        *,
        last_read_seq: int,
    ) -> list[tuple[uuid.UUID, Event]]:
        if not members:
            return []
        await session.execute(
            insert(ChatParticipant),
            [
                {"chat_id": chat_id, "user_id": user, "role": role.value, "last_read_seq": last_read_seq}
                for user, role in members.items()
            ],
        )
        events: list[Event] = [
            ChatMembershipChanged(
                chat_id=ids.encode(ids.Prefix.CHAT, chat_id), user_id=ids.encode(ids.Prefix.USER, user), member=True
            )
            for user in members
        ]
        row_ids = await record(session, *events, wake_relay=False)
        return list(zip(row_ids, events, strict=True))

    async def _publish(self, outbox: list[tuple[uuid.UUID, Event]]) -> None:
        """Publish committed outbox rows on their live subjects; the stamper then marks them published.

        ``publish`` only buffers, so this costs no round trip. Until a row is stamped the relay
        leaves it alone for :data:`shared.bus.SELF_PUBLISH_GRACE_SECONDS`, then publishes it itself.
        """
        if not outbox:
            return
        try:
            for row_id, event in outbox:
                subject = live_subject(event)
                assert subject is not None
                await self._nats.publish(subject, encode_event(event), headers={NATS_MSG_ID_HEADER: str(row_id)})
        except Exception as exc:
            log.warning("chat.publish_deferred_to_relay", rows=len(outbox), error=f"{type(exc).__name__}: {exc}")
            return
        self._stamper.add(row_id for row_id, _ in outbox)

    async def publish_committed(self, outbox: list[tuple[uuid.UUID, Event]]) -> None:
        """Publish outbox rows another service committed with ``wake_relay=False`` (e.g. moderation)."""
        await self._publish(outbox)

    async def publish_live(self, event: Event) -> None:
        """Publish a live-only event (never stored) on its chat's subject."""
        await self._publish_live(event)

    async def close(self) -> None:
        """Stamp what was published but not yet marked (call before closing NATS and the database)."""
        await self._stamper.close()

    async def announce_presence(self, user_id: uuid.UUID, online: bool) -> int:
        """Tell every chat of ``user_id`` that they came online or went offline; returns how many chats."""
        async with self._sessions() as session:
            chat_ids = list(
                await session.scalars(select(ChatParticipant.chat_id).where(ChatParticipant.user_id == user_id))
            )
        user = ids.encode(ids.Prefix.USER, user_id)
        status = "online" if online else "offline"
        for chat_id in chat_ids:
            await self._publish_live(
                ChatPresence(chat_id=ids.encode(ids.Prefix.CHAT, chat_id), user_id=user, status=status)
            )
        return len(chat_ids)

    async def _publish_live(self, event: Event) -> None:
        subject = live_subject(event)
        assert subject is not None
        try:
            await self._nats.publish(subject, encode_event(event))
        except Exception as exc:
            # Typing and read receipts are ephemeral; the read position itself is already stored.
            log.warning("chat.live_publish_failed", subject=subject, error=f"{type(exc).__name__}: {exc}")


def _require_group(chat: Chat) -> None:
    """Members change by hand in group chats only; event and club rooms follow RSVPs and memberships."""
    if chat.type in MANAGED_TYPES:
        raise Conflict(
            "members of this room follow the event's RSVPs or the club's membership",
            code="chat_membership_managed",
        )
    if chat.type != ChatType.GROUP:
        raise Conflict("only group chats change members", code="not_a_group_chat")


def _clamp(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise InvalidInput(errors=[FieldError("limit", "must be at least 1")])
    return min(limit, maximum)


def _visible_to(actor: uuid.UUID) -> Any:
    """Flagged messages are hidden from everyone but their sender until reviewed."""
    return or_(ChatMessage.moderation_status != ModerationStatus.FLAGGED.value, ChatMessage.sender_id == actor)


def _delivery(row: ChatMessage, readers: Iterable[Any]) -> Delivery:
    read_by = [
        ids.encode(ids.Prefix.USER, r.user_id)
        for r in readers
        if r.user_id != row.sender_id and r.last_read_seq >= row.seq
    ]
    return Delivery(status="read" if read_by else "sent", read_by=read_by)


async def _membership(
    session: AsyncSession, chat_id: uuid.UUID, user_id: uuid.UUID, *, lock_chat: bool = False
) -> tuple[Chat, ChatParticipant]:
    """The chat and the user's participant row; 404 when the user is not in it (or it does not exist)."""
    query = (
        select(Chat, ChatParticipant)
        .join(ChatParticipant, and_(ChatParticipant.chat_id == Chat.id, ChatParticipant.user_id == user_id))
        .where(Chat.id == chat_id)
    )
    if lock_chat:
        # Membership changes of one chat queue up behind each other (size cap, last admin).
        query = query.with_for_update(of=Chat)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("no such chat", code="chat_not_found")
    return row[0], row[1]


async def _check_send_refs(
    session: AsyncSession,
    chat_id: uuid.UUID,
    actor: uuid.UUID,
    reply_to: uuid.UUID | None,
    mentions: Sequence[uuid.UUID],
) -> tuple[Chat, ChatParticipant]:
    """The chat and the sender's participant row; 404 if not in it, 422 for a reply or mention outside it."""
    chat, me = await _membership(session, chat_id, actor)
    if reply_to is not None:
        target = await session.scalar(
            select(ChatMessage.id).where(ChatMessage.id == reply_to, ChatMessage.chat_id == chat_id)
        )
        if target is None:
            raise InvalidInput(errors=[FieldError("reply_to", "no such message in this chat")])
    if mentions:
        await _require_mentionable(session, chat_id, actor, mentions)
    return chat, me


async def _message_for_update(session: AsyncSession, chat_id: uuid.UUID, message_id: uuid.UUID) -> ChatMessage:
    row = await session.scalar(
        select(ChatMessage).where(ChatMessage.id == message_id, ChatMessage.chat_id == chat_id).with_for_update()
    )
    if row is None:
        raise NotFound("no such message", code="message_not_found")
    return row


async def _message_at(session: AsyncSession, chat_id: uuid.UUID, seq: int) -> uuid.UUID | None:
    if seq == 0:
        return None
    return await session.scalar(select(ChatMessage.id).where(ChatMessage.chat_id == chat_id, ChatMessage.seq == seq))


async def _require_mentionable(
    session: AsyncSession, chat_id: uuid.UUID, actor: uuid.UUID, mentions: Sequence[uuid.UUID]
) -> None:
    """Every mentioned user is a member of the chat (422 otherwise; 404 if the caller is not one)."""
    members = set(
        (
            await session.scalars(
                select(ChatParticipant.user_id).where(
                    ChatParticipant.chat_id == chat_id, ChatParticipant.user_id.in_([*mentions, actor])
                )
            )
        ).all()
    )
    if actor not in members:
        raise NotFound("no such chat", code="chat_not_found")
    if missing := [m for m in mentions if m not in members]:
        raise InvalidInput(
            "mentions must name members of this chat",
            code="mention_not_member",
            errors=[FieldError("mentions", f"not in this chat: {ids.encode(ids.Prefix.USER, m)}") for m in missing],
        )


async def _require_users(session: AsyncSession, user_ids: set[uuid.UUID], field: str) -> None:
    if not user_ids:
        return
    found = set(
        (
            await session.scalars(
                select(User.id).where(User.id.in_(user_ids), User.status == AccountStatus.ACTIVE.value)
            )
        ).all()
    )
    if missing := user_ids - found:
        raise InvalidInput(
            errors=[FieldError(field, f"no such user: {ids.encode(ids.Prefix.USER, m)}") for m in sorted(missing)]
        )


async def _keep_an_admin(session: AsyncSession, chat_id: uuid.UUID) -> None:
    """When the last admin goes, the longest-standing member becomes one."""
    admins = await session.scalar(
        select(func.count()).where(
            ChatParticipant.chat_id == chat_id, ChatParticipant.role == ParticipantRole.ADMIN.value
        )
    )
    if admins:
        return
    successor = await session.scalar(
        select(ChatParticipant.user_id)
        .where(ChatParticipant.chat_id == chat_id)
        .order_by(ChatParticipant.joined_at, ChatParticipant.user_id)
        .limit(1)
    )
    if successor is not None:
        await session.execute(
            update(ChatParticipant)
            .where(ChatParticipant.chat_id == chat_id, ChatParticipant.user_id == successor)
            .values(role=ParticipantRole.ADMIN.value)
        )


async def _chat_views(
    session: AsyncSession, actor: uuid.UUID, rows: Sequence[tuple[Chat, ChatParticipant]]
) -> list[ChatView]:
    """Views of the given chats with participants, last message and unread count, in three queries."""
    if not rows:
        return []
    chat_ids = [chat.id for chat, _ in rows]
    members = (
        await session.execute(
            select(ChatParticipant, User.display_name)
            .join(User, User.id == ChatParticipant.user_id)
            .where(ChatParticipant.chat_id.in_(chat_ids))
            .order_by(ChatParticipant.joined_at, ChatParticipant.user_id)
        )
    ).all()
    by_chat: dict[uuid.UUID, list[Participant]] = {}
    for participant, name in members:
        by_chat.setdefault(participant.chat_id, []).append(
            Participant(
                user_id=ids.encode(ids.Prefix.USER, participant.user_id),
                display_name=name,
                role=participant.role,
                last_read_seq=participant.last_read_seq,
                joined_at=participant.joined_at,
            )
        )
    keys = [(chat.id, chat.last_seq) for chat, _ in rows if chat.last_seq > 0]
    last: dict[uuid.UUID, ChatMessage] = {}
    if keys:
        for message in (
            await session.scalars(select(ChatMessage).where(tuple_(ChatMessage.chat_id, ChatMessage.seq).in_(keys)))
        ).all():
            # A message awaiting review is only its sender's to see.
            if message.moderation_status != ModerationStatus.FLAGGED or message.sender_id == actor:
                last[message.chat_id] = message
    unread_rows = (
        await session.execute(
            select(ChatMessage.chat_id, func.count())
            .join(
                ChatParticipant,
                and_(ChatParticipant.chat_id == ChatMessage.chat_id, ChatParticipant.user_id == actor),
            )
            .where(
                ChatMessage.chat_id.in_(chat_ids),
                ChatMessage.seq > ChatParticipant.last_read_seq,
                ChatMessage.sender_id != actor,
                ChatMessage.deleted_at.is_(None),
                ChatMessage.moderation_status != ModerationStatus.FLAGGED.value,
            )
            .group_by(ChatMessage.chat_id)
        )
    ).all()
    unread: dict[uuid.UUID, int] = {chat_id: count for chat_id, count in unread_rows}  # noqa: C416
    return [
        ChatView(
            id=ids.encode(ids.Prefix.CHAT, chat.id),
            type=chat.type,
            title=chat.title,
            created_by=ids.encode(ids.Prefix.USER, chat.created_by),
            created_at=chat.created_at,
            last_activity_at=chat.last_activity_at,
            last_seq=chat.last_seq,
            role=me.role,
            last_read_seq=me.last_read_seq,
            muted_until=me.muted_until,
            unread_count=unread.get(chat.id, 0),
            last_message=message_view(last[chat.id]) if chat.id in last else None,
            participants=by_chat.get(chat.id, []),
            event_id=ids.encode(ids.Prefix.EVENT, chat.event_id) if chat.event_id else None,
            club_id=ids.encode(ids.Prefix.CLUB, chat.club_id) if chat.club_id else None,
            read_only=chat.read_only,
        )
        for chat, me in rows
    ]
