"""Event and club rooms: chats whose membership follows confirmed RSVPs and active club membership.

The events and clubs services call these functions inside their own transactions, so a room's
members change in the same commit as the RSVP or membership that caused it. Each change is written
to the outbox as ``chat.room_membership``; the relay publishes it on the user's live subject and
gateways (un)subscribe that user's sockets. Clients cannot add or remove members of these rooms.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ids
from shared.bus import ChatRoomMembershipChanged, ChatUpdated, record
from shared.domain.chat.models import Chat, ChatParticipant, ChatType, ParticipantRole
from shared.domain.clubs.models import ClubMembership, MemberRole, MembershipStatus

# Club roles that moderate the club's room (delete messages, review its cases, post when read-only).
CLUB_STAFF_ROLES = (MemberRole.OWNER.value, MemberRole.ADMIN.value, MemberRole.MODERATOR.value)
_TITLE_CHARS = 120


async def open_event_room(session: AsyncSession, event_id: uuid.UUID, organizer_id: uuid.UUID, title: str) -> None:
    """Create the event's room (once) with the organizer as its admin; a published event calls this."""
    chat_id = await session.scalar(
        pg_insert(Chat)
        .values(
            id=ids.uuid7(),
            type=ChatType.EVENT.value,
            title=title[:_TITLE_CHARS],
            created_by=organizer_id,
            event_id=event_id,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Chat.id)
    )
    if chat_id is not None:
        await _join(session, chat_id, organizer_id, ParticipantRole.ADMIN)


async def close_event_room(session: AsyncSession, event_id: uuid.UUID, actor_id: uuid.UUID) -> None:
    """A cancelled event's room stays readable but only its moderators may post; its sockets are told.

    The ``chat.update`` row is published by the relay (after its self-publish grace): the events
    service has no NATS connection, and the send path enforces read-only from the commit on anyway.
    """
    closed = (
        await session.execute(
            update(Chat)
            .where(Chat.event_id == event_id, Chat.read_only.is_(False))
            .values(read_only=True)
            .returning(Chat.id, Chat.title)
        )
    ).one_or_none()
    if closed is not None:
        await record(
            session,
            ChatUpdated(
                chat_id=ids.encode(ids.Prefix.CHAT, closed.id),
                title=closed.title,
                read_only=True,
                updated_by=ids.encode(ids.Prefix.USER, actor_id),
            ),
        )


async def add_event_member(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """``user_id``'s RSVP became confirmed: they join the event's room."""
    chat_id = await session.scalar(select(Chat.id).where(Chat.event_id == event_id))
    if chat_id is not None:
        await _join(session, chat_id, user_id, ParticipantRole.MEMBER)


async def remove_event_member(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """``user_id``'s RSVP stopped being confirmed: they leave the event's room (the organizer stays)."""
    chat_id = await session.scalar(select(Chat.id).where(Chat.event_id == event_id))
    if chat_id is not None:
        await _leave(session, chat_id, user_id, keep_admins=True)


async def open_club_room(session: AsyncSession, club_id: uuid.UUID, owner_id: uuid.UUID, name: str) -> None:
    """Create the club's room (once) with the owner as its admin; a new club calls this."""
    chat_id = await session.scalar(
        pg_insert(Chat)
        .values(
            id=ids.uuid7(), type=ChatType.CLUB.value, title=name[:_TITLE_CHARS], created_by=owner_id, club_id=club_id
        )
        .on_conflict_do_nothing(index_elements=["club_id"])
        .returning(Chat.id)
    )
    if chat_id is not None:
        await _join(session, chat_id, owner_id, ParticipantRole.ADMIN)


async def add_club_member(session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """``user_id`` became an active member of the club: they join its room."""
    chat_id = await session.scalar(select(Chat.id).where(Chat.club_id == club_id))
    if chat_id is not None:
        await _join(session, chat_id, user_id, ParticipantRole.MEMBER)


async def remove_club_member(session: AsyncSession, club_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """``user_id`` left, was removed from or banned by the club: they leave its room."""
    chat_id = await session.scalar(select(Chat.id).where(Chat.club_id == club_id))
    if chat_id is not None:
        await _leave(session, chat_id, user_id, keep_admins=False)


async def close_club_room(session: AsyncSession, club_id: uuid.UUID) -> None:
    """A deleted club's room loses every member and becomes read-only (its history stays for moderation)."""
    chat_id = await session.scalar(
        update(Chat).where(Chat.club_id == club_id).values(read_only=True).returning(Chat.id)
    )
    if chat_id is None:
        return
    gone = list(
        await session.scalars(
            delete(ChatParticipant).where(ChatParticipant.chat_id == chat_id).returning(ChatParticipant.user_id)
        )
    )
    await _announce(session, chat_id, gone, member=False)


async def is_room_moderator(session: AsyncSession, chat: Chat, role: str | None, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` moderates ``chat``: its admin, or a club owner/admin/moderator of a club room."""
    if role == ParticipantRole.ADMIN.value:
        return True
    if chat.club_id is None:
        return False
    staff = await session.scalar(
        select(ClubMembership.id).where(
            ClubMembership.club_id == chat.club_id,
            ClubMembership.user_id == user_id,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
            ClubMembership.role.in_(CLUB_STAFF_ROLES),
        )
    )
    return staff is not None


async def _join(session: AsyncSession, chat_id: uuid.UUID, user_id: uuid.UUID, role: ParticipantRole) -> None:
    # Newcomers start with nothing unread; the history is theirs to read.
    last_seq = select(Chat.last_seq).where(Chat.id == chat_id).scalar_subquery()
    joined = await session.scalar(
        pg_insert(ChatParticipant)
        .values(chat_id=chat_id, user_id=user_id, role=role.value, last_read_seq=last_seq)
        .on_conflict_do_nothing(index_elements=["chat_id", "user_id"])
        .returning(ChatParticipant.user_id)
    )
    if joined is not None:
        await _announce(session, chat_id, [user_id], member=True)


async def _leave(session: AsyncSession, chat_id: uuid.UUID, user_id: uuid.UUID, *, keep_admins: bool) -> None:
    query = delete(ChatParticipant).where(ChatParticipant.chat_id == chat_id, ChatParticipant.user_id == user_id)
    if keep_admins:
        query = query.where(ChatParticipant.role != ParticipantRole.ADMIN.value)
    gone = await session.scalar(query.returning(ChatParticipant.user_id))
    if gone is not None:
        await _announce(session, chat_id, [gone], member=False)


async def _announce(session: AsyncSession, chat_id: uuid.UUID, user_ids: list[uuid.UUID], *, member: bool) -> None:
    if not user_ids:
        return
    chat = ids.encode(ids.Prefix.CHAT, chat_id)
    await record(
        session,
        *(
            ChatRoomMembershipChanged(chat_id=chat, user_id=ids.encode(ids.Prefix.USER, user), member=member)
            for user in user_ids
        ),
    )
