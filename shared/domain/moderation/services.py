"""Moderation verbs: reports on chat messages, reviewing them, and the global and per-club blocklists.

Who moderates what: platform moderators and admins (user roles) everything; a club's owner, admins
and moderators that club's room and blocklist; a chat's admins (group creator, event organizer) their
chat's cases. Every moderator action appends a row to the audit log in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec
from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import ChatMessageDeleted, ChatMessagePosted, ChatModerated, Event, record
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat.models import Chat, ChatMessage, ChatParticipant, ModerationStatus, ParticipantRole
from shared.domain.chat.rooms import CLUB_STAFF_ROLES
from shared.domain.chat.services import ChatService, message_view
from shared.domain.clubs.models import Club, ClubMembership, MembershipStatus, Privacy
from shared.domain.moderation.blocklist import normalize_term
from shared.domain.moderation.cases import write_audit
from shared.domain.moderation.models import (
    AuditAction,
    BlocklistTerm,
    CaseAction,
    CaseStatus,
    MessageCase,
)
from shared.domain.moderation.schemas import (
    BlocklistTermCreate,
    BlocklistTermView,
    CaseView,
    ReportRequest,
    ResolveRequest,
)
from shared.domain.users.models import Role
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

PLATFORM_MODERATOR_ROLES = frozenset({Role.MODERATOR.value, Role.ADMIN.value})
_CASE_AUDIT = {
    CaseAction.APPROVE: AuditAction.CASE_APPROVE,
    CaseAction.REMOVE: AuditAction.CASE_REMOVE,
    CaseAction.DISMISS: AuditAction.CASE_DISMISS,
}


class _IdKey(msgspec.Struct, frozen=True):
    """Sort key of the moderation lists: newest id first."""

    id: uuid.UUID


def is_platform_moderator(claims: AccessClaims) -> bool:
    """Whether the caller moderates the whole platform."""
    return bool(PLATFORM_MODERATOR_ROLES.intersection(claims.roles))


def _case_view(case: MessageCase, message: ChatMessage) -> CaseView:
    return CaseView(
        id=ids.encode(ids.Prefix.CASE, case.id),
        chat_id=ids.encode(ids.Prefix.CHAT, case.chat_id),
        message_id=ids.encode(ids.Prefix.MESSAGE, case.message_id),
        reporter_id=ids.encode(ids.Prefix.USER, case.reporter_id) if case.reporter_id else None,
        reason=case.reason,
        status=case.status,
        resolution=case.resolution,
        note=case.note,
        resolved_by=ids.encode(ids.Prefix.USER, case.resolved_by) if case.resolved_by else None,
        created_at=case.created_at,
        resolved_at=case.resolved_at,
        message=message_view(message),
    )


def _term_view(row: BlocklistTerm) -> BlocklistTermView:
    return BlocklistTermView(
        id=ids.encode(ids.Prefix.BLOCKLIST_TERM, row.id),
        term=row.term,
        mode=row.mode,
        club_id=ids.encode(ids.Prefix.CLUB, row.club_id) if row.club_id else None,
        created_by=ids.encode(ids.Prefix.USER, row.created_by) if row.created_by else None,
        created_at=row.created_at,
    )


def _moderated_by(actor: uuid.UUID) -> object:
    """SQL condition: the case's chat is one ``actor`` moderates as chat admin or club staff."""
    chat_admin = exists().where(
        ChatParticipant.chat_id == MessageCase.chat_id,
        ChatParticipant.user_id == actor,
        ChatParticipant.role == ParticipantRole.ADMIN.value,
    )
    club_staff = exists().where(
        Chat.id == MessageCase.chat_id,
        ClubMembership.club_id == Chat.club_id,
        ClubMembership.user_id == actor,
        ClubMembership.status == MembershipStatus.ACTIVE.value,
        ClubMembership.role.in_(CLUB_STAFF_ROLES),
    )
    return or_(chat_admin, club_staff)


class ModerationService:
    """Reports, case review and blocklists; changes to messages fan out through the chat service."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        chats: ChatService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._chats = chats
        self._clock = clock

    # Reports and cases

    async def report(
        self, actor: uuid.UUID, chat_id: uuid.UUID, message_id: uuid.UUID, data: ReportRequest
    ) -> tuple[CaseView, bool]:
        """Open a case on a message of the caller's chat; an open report of theirs is returned as is (``False``)."""
        reason = data.reason.strip()
        if not reason:
            raise InvalidInput(errors=[FieldError("reason", "must not be blank")])
        async with self._sessions.begin() as session:
            member = await session.scalar(
                select(ChatParticipant.user_id).where(
                    ChatParticipant.chat_id == chat_id, ChatParticipant.user_id == actor
                )
            )
            if member is None:
                raise NotFound("no such chat", code="chat_not_found")
            message = await session.scalar(
                select(ChatMessage).where(ChatMessage.id == message_id, ChatMessage.chat_id == chat_id)
            )
            hidden = message is not None and (
                message.moderation_status == ModerationStatus.FLAGGED and message.sender_id != actor
            )
            if message is None or hidden:
                raise NotFound("no such message", code="message_not_found")
            if message.sender_id == actor:
                raise InvalidInput("you cannot report your own message", code="cannot_report_own_message")
            if message.deleted_at is not None:
                raise Conflict("the message was deleted", code="message_deleted")
            # The partial unique index is the arbiter between concurrent reports by the same user.
            case_id = await session.scalar(
                pg_insert(MessageCase)
                .values(id=ids.uuid7(), chat_id=chat_id, message_id=message_id, reporter_id=actor, reason=reason)
                .on_conflict_do_nothing(
                    index_elements=["message_id", "reporter_id"], index_where=MessageCase.status == CaseStatus.OPEN
                )
                .returning(MessageCase.id)
            )
            created = case_id is not None
            case = await session.scalar(
                select(MessageCase).where(
                    MessageCase.message_id == message_id,
                    MessageCase.reporter_id == actor,
                    MessageCase.status == CaseStatus.OPEN.value,
                )
            )
            assert case is not None
            return _case_view(case, message), created

    async def list_cases(
        self, claims: AccessClaims, status: str | None, cursor: str | None, limit: int | None
    ) -> Page[CaseView]:
        """Cases the caller may review, newest first; ``status`` is ``open`` (default), ``resolved`` or ``all``."""
        wanted = status or CaseStatus.OPEN.value
        if wanted not in ("open", "resolved", "all"):
            raise InvalidInput(errors=[FieldError("status", "one of open, resolved, all")])
        size = clamp_limit(limit)
        query = (
            select(MessageCase, ChatMessage)
            .join(ChatMessage, ChatMessage.id == MessageCase.message_id)
            .order_by(MessageCase.id.desc())
            .limit(size + 1)
        )
        if wanted != "all":
            query = query.where(MessageCase.status == wanted)
        if not is_platform_moderator(claims):
            query = query.where(_moderated_by(claims.user_id))  # type: ignore[arg-type]
        if cursor is not None:
            query = query.where(MessageCase.id < decode_cursor(cursor, _IdKey).id)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        views = [_case_view(case, message) for case, message in rows]
        return make_page(views, size, lambda v: _IdKey(ids.decode(ids.Prefix.CASE, v.id)))

    async def resolve(self, claims: AccessClaims, case_id: uuid.UUID, data: ResolveRequest) -> CaseView:
        """Decide a case: ``approve`` shows a flagged message, ``remove`` tombstones it, ``dismiss`` closes it."""
        action = CaseAction(data.action)
        note = data.note.strip() if data.note else None
        actor = claims.user_id
        outbox: list[tuple[uuid.UUID, Event]] = []
        live: ChatModerated | None = None
        async with self._sessions.begin() as session:
            query = select(MessageCase).where(MessageCase.id == case_id)
            if not is_platform_moderator(claims):
                query = query.where(_moderated_by(actor))  # type: ignore[arg-type]
            case = await session.scalar(query.with_for_update(of=MessageCase))
            if case is None:
                raise NotFound("no such case", code="case_not_found")
            if case.status != CaseStatus.OPEN:
                raise Conflict("this case is already resolved", code="case_already_resolved")
            message = await session.scalar(
                select(ChatMessage).where(ChatMessage.id == case.message_id).with_for_update()
            )
            assert message is not None  # the case's foreign key cascades
            club_id = await session.scalar(select(Chat.club_id).where(Chat.id == case.chat_id))
            now = self._clock()
            changed: str | None = None
            if action == CaseAction.APPROVE and message.moderation_status == ModerationStatus.FLAGGED:
                message.moderation_status = ModerationStatus.VISIBLE.value
                changed = "approved"
            elif action == CaseAction.REMOVE and message.deleted_at is None:
                message.content = None
                message.deleted_at = now
                message.deleted_by = actor
                message.moderation_status = ModerationStatus.REMOVED.value
                changed = "removed"
            elif action == CaseAction.DISMISS and message.moderation_status == ModerationStatus.FLAGGED:
                # Dismissing would leave the message hidden for good: approve or remove it instead.
                raise Conflict("this message is hidden until approved or removed", code="message_awaiting_review")
            await session.flush()
            # A decision on the message settles every open report on it; a dismissal only this one.
            settled = (
                MessageCase.message_id == case.message_id if action != CaseAction.DISMISS else MessageCase.id == case.id
            )
            await session.execute(
                update(MessageCase)
                .where(settled, MessageCase.status == CaseStatus.OPEN.value)
                .values(
                    status=CaseStatus.RESOLVED.value,
                    resolution=action.value,
                    note=note,
                    resolved_by=actor,
                    resolved_at=now,
                )
            )
            await write_audit(
                session,
                actor,
                _CASE_AUDIT[action],
                message.id,
                case_id=case.id,
                chat_id=case.chat_id,
                club_id=club_id,
                note=note,
            )
            view = message_view(message)
            if changed is not None:
                event: Event = (
                    ChatMessagePosted(message=view) if changed == "approved" else ChatMessageDeleted(message=view)
                )
                (row_id,) = await record(session, event, wake_relay=False)
                outbox.append((row_id, event))
                live = ChatModerated(
                    chat_id=view.chat_id,
                    message_id=view.id,
                    seq=view.seq,
                    action=changed,
                    moderator_id=ids.encode(ids.Prefix.USER, actor),
                )
            await session.refresh(case)
            result = _case_view(case, message)
        await self._chats.publish_committed(outbox)
        if live is not None:
            await self._chats.publish_live(live)
        return result

    # Blocklists

    async def list_terms(
        self, claims: AccessClaims, club_id: uuid.UUID | None, cursor: str | None, limit: int | None
    ) -> Page[BlocklistTermView]:
        """The platform's list (``club_id`` ``None``) or a club's, newest first."""
        size = clamp_limit(limit)
        async with self._sessions() as session:
            await self._require_list_moderator(session, claims, club_id)
            query = (
                select(BlocklistTerm)
                .where(BlocklistTerm.club_id.is_(None) if club_id is None else BlocklistTerm.club_id == club_id)
                .order_by(BlocklistTerm.id.desc())
                .limit(size + 1)
            )
            if cursor is not None:
                query = query.where(BlocklistTerm.id < decode_cursor(cursor, _IdKey).id)
            rows = (await session.scalars(query)).all()
        views = [_term_view(r) for r in rows]
        return make_page(views, size, lambda v: _IdKey(ids.decode(ids.Prefix.BLOCKLIST_TERM, v.id)))

    async def add_term(
        self, claims: AccessClaims, club_id: uuid.UUID | None, data: BlocklistTermCreate
    ) -> BlocklistTermView:
        """Add a term to the platform's or a club's list; the same term twice is 409 ``blocklist_term_exists``."""
        term = normalize_term(data.term)
        if not term:
            raise InvalidInput(errors=[FieldError("term", "must not be blank")])
        async with self._sessions.begin() as session:
            await self._require_list_moderator(session, claims, club_id)
            where = BlocklistTerm.club_id.is_(None) if club_id is None else BlocklistTerm.club_id.is_not(None)
            term_id = await session.scalar(
                pg_insert(BlocklistTerm)
                .values(id=ids.uuid7(), club_id=club_id, term=term, mode=data.mode, created_by=claims.user_id)
                .on_conflict_do_nothing(
                    index_elements=["term"] if club_id is None else ["club_id", "term"], index_where=where
                )
                .returning(BlocklistTerm.id)
            )
            if term_id is None:
                raise Conflict("this term is on the list already", code="blocklist_term_exists")
            await write_audit(
                session,
                claims.user_id,
                AuditAction.BLOCKLIST_ADD,
                term_id,
                club_id=club_id,
                note=f"{data.mode}: {term}",
            )
            row = await session.get_one(BlocklistTerm, term_id)
        # This process's next send must not wait for the NOTIFY to come round; other processes hear it.
        self._chats.blocklist.forget(club_id)
        return _term_view(row)

    async def delete_term(self, claims: AccessClaims, club_id: uuid.UUID | None, term_id: uuid.UUID) -> None:
        """Remove a term from the platform's or a club's list."""
        async with self._sessions.begin() as session:
            await self._require_list_moderator(session, claims, club_id)
            scope = BlocklistTerm.club_id.is_(None) if club_id is None else BlocklistTerm.club_id == club_id
            gone = (
                await session.execute(
                    delete(BlocklistTerm)
                    .where(BlocklistTerm.id == term_id, scope)
                    .returning(BlocklistTerm.term, BlocklistTerm.mode)
                )
            ).one_or_none()
            if gone is None:
                raise NotFound("no such blocklist term", code="blocklist_term_not_found")
            await write_audit(
                session,
                claims.user_id,
                AuditAction.BLOCKLIST_DELETE,
                term_id,
                club_id=club_id,
                note=f"{gone.mode}: {gone.term}",
            )
        self._chats.blocklist.forget(club_id)

    async def _require_list_moderator(
        self, session: AsyncSession, claims: AccessClaims, club_id: uuid.UUID | None
    ) -> None:
        """Platform moderators manage the global list; club staff their club's (others: 403, or 404 if hidden)."""
        if club_id is None:
            if not is_platform_moderator(claims):
                raise PermissionDenied("only platform moderators manage this list", code="not_moderator")
            return
        row = (
            await session.execute(
                select(Club.privacy_level, ClubMembership.role, ClubMembership.status)
                .outerjoin(
                    ClubMembership, and_(ClubMembership.club_id == Club.id, ClubMembership.user_id == claims.user_id)
                )
                .where(Club.id == club_id, Club.deleted_at.is_(None))
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such club", code="club_not_found")
        privacy, role, status = row
        if status == MembershipStatus.ACTIVE and role in CLUB_STAFF_ROLES:
            return
        if status != MembershipStatus.ACTIVE and privacy != Privacy.PUBLIC and not is_platform_moderator(claims):
            raise NotFound("no such club", code="club_not_found")
        if is_platform_moderator(claims):
            return
        raise PermissionDenied(
            "only the club's owner, admins and moderators manage its blocklist", code="insufficient_role"
        )
