"""Request and response bodies of the chat endpoints (seed 000 §2.4 shapes); also the gateway's payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

MAX_TEXT_CHARS = 4000
MAX_ATTACHMENTS = 10
MAX_MENTIONS = 50
MAX_GROUP_MEMBERS = 500
TYPING_TTL_MS = 5000

ClientMessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PublicId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
UserIds = Annotated[list[PublicId], msgspec.Meta(min_length=1, max_length=100)]


class Attachment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A media object attached to a message."""

    media_id: PublicId


class TextContent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="text"):
    """A text message with optional attachments."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] = ""
    attachments: Annotated[list[Attachment], msgspec.Meta(max_length=MAX_ATTACHMENTS)] = msgspec.field(
        default_factory=list
    )


MessageContent = TextContent


class CreateChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A new direct chat (one other user) or group chat (a title and members)."""

    type: Literal["direct", "group"]
    participant_ids: UserIds
    title: Title | None = None


class UpdateChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Settings to change; a field left out (or ``null``) stays as it is."""

    # Group chats only; event and club rooms are named after their event or club.
    title: Title | None = None
    # Group, event and club rooms: only the room's moderators post while it is set.
    read_only: bool | None = None


class AddParticipantsRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Users to add to a group chat."""

    user_ids: UserIds


class SendMessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A message to store; ``client_message_id`` makes a resend return the first one."""

    content: MessageContent
    # Over REST the Idempotency-Key header may stand in for it.
    client_message_id: ClientMessageId | None = None
    sender_id: PublicId | None = None
    reply_to: PublicId | None = None
    mentions: Annotated[list[PublicId], msgspec.Meta(max_length=MAX_MENTIONS)] = msgspec.field(default_factory=list)


class EditMessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """New content for one's own message."""

    content: MessageContent


class TypingRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Whether the caller is typing in the chat."""

    is_typing: bool = True
    user_id: PublicId | None = None


class ReadRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The newest message the caller has read."""

    message_id: PublicId


class Message(msgspec.Struct, kw_only=True):
    """A message as every reader sees it; a deleted one has no content and ``deleted`` set."""

    id: str
    chat_id: str
    seq: int
    sender_id: str
    client_message_id: str
    content: MessageContent | None
    sent_at: datetime
    edited_at: datetime | None
    deleted: bool
    deleted_at: datetime | None
    reply_to: str | None
    mentions: list[str]
    moderation_status: str


class Delivery(msgspec.Struct):
    """Who of the other participants has read a message (``status`` is ``read`` once anyone has)."""

    status: Literal["sent", "read"]
    read_by: list[str]


class HistoryMessage(Message, kw_only=True):
    """A message in the history, with its read state."""

    delivery: Delivery


class Paging(msgspec.Struct):
    """Where the next (older) page starts: pass it as ``before``; ``None`` when there is none."""

    next_before: int | None


class MessageHistory(msgspec.Struct):
    """A page of a chat's history, newest first."""

    messages: list[HistoryMessage]
    paging: Paging


class Participant(msgspec.Struct):
    """A member of a chat."""

    user_id: str
    display_name: str
    role: str
    last_read_seq: int
    joined_at: datetime


class ChatView(msgspec.Struct, kw_only=True):
    """A chat as one of its participants sees it."""

    id: str
    type: str
    title: str | None
    created_by: str
    created_at: datetime
    last_activity_at: datetime
    last_seq: int
    role: str
    last_read_seq: int
    muted_until: datetime | None
    unread_count: int
    last_message: Message | None
    participants: list[Participant]
    # Set on event and club rooms, whose members follow RSVPs / club membership.
    event_id: str | None = None
    club_id: str | None = None
    read_only: bool = False


class MessageAccepted(msgspec.Struct):
    """A stored message: the answer to a send, the same for a resend."""

    message_id: str
    ack_token: str
    client_message_id: str
    chat_id: str
    seq: int
    status: Literal["queued"] = "queued"


class MessageRemoved(msgspec.Struct):
    """A deleted message and who deleted it."""

    status: Literal["removed"]
    moderator_id: str
    message_id: str


class TypingAccepted(msgspec.Struct):
    """How long the typing state lasts unless renewed."""

    expires_in_ms: int


class ReadState(msgspec.Struct):
    """The caller's read position after a read receipt (it never moves back)."""

    chat_id: str
    user_id: str
    message_id: str | None
    seq: int
