"""Protocol frames of the gateway: versioned msgspec structs, tagged by ``type``.

Every frame is one JSON object in one text message. ``version`` is omitted on the
wire while it is 1, so a frame without it is a version 1 frame.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.domain.chat.schemas import MAX_MENTIONS, ClientMessageId, Message, MessageContent, PublicId

PROTOCOL_VERSION = 1

# A JWT is a few hundred bytes; the cap keeps a hostile init frame cheap to reject.
MAX_TOKEN_CHARS = 4096
# Matches auth_sessions.client, so the label can be stored as it came.
MAX_CLIENT_CHARS = 40


class Frame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Base of every frame; the tag is its type, e.g. ``connection.init``."""

    version: int = PROTOCOL_VERSION


# Client → gateway


class ConnectionInit(Frame, tag="connection.init", frozen=True):
    """The first frame of a connection: who the client is."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]
    client: Annotated[str, msgspec.Meta(max_length=MAX_CLIENT_CHARS)] | None = None
    # chat id -> the last seq the client has; everything after it is replayed before live frames.
    resume: dict[PublicId, Annotated[int, msgspec.Meta(ge=0)]] | None = None


class Ping(Frame, tag="ping", frozen=True):
    """An application-level liveness check; answered with :class:`Pong`."""


class MessageSend(Frame, tag="message.send", frozen=True):
    """Store a message; answered with :class:`Ack` (or an error whose ``ref`` is the client id)."""

    chat_id: PublicId
    client_message_id: ClientMessageId
    content: MessageContent
    reply_to: PublicId | None = None
    mentions: Annotated[list[PublicId], msgspec.Meta(max_length=MAX_MENTIONS)] = msgspec.field(default_factory=list)


class MessageEdit(Frame, tag="message.edit", frozen=True):
    """Replace the content of one's own message; everyone gets ``message.update``."""

    chat_id: PublicId
    message_id: PublicId
    content: MessageContent


class MessageDelete(Frame, tag="message.delete", frozen=True):
    """Delete a message; everyone gets ``message.delete`` with the tombstone."""

    chat_id: PublicId
    message_id: PublicId


class TypingStart(Frame, tag="typing.start", frozen=True):
    """The user is typing in a chat (lapses after the typing TTL unless repeated)."""

    chat_id: PublicId


class TypingStop(Frame, tag="typing.stop", frozen=True):
    """The user stopped typing."""

    chat_id: PublicId


class DeliveryRead(Frame, tag="delivery.read", frozen=True):
    """The user has read up to ``message_id``."""

    chat_id: PublicId
    message_id: PublicId


ClientFrame = (
    ConnectionInit | Ping | MessageSend | MessageEdit | MessageDelete | TypingStart | TypingStop | DeliveryRead
)


# Gateway → client


class ConnectionAck(Frame, tag="connection.ack", frozen=True):
    """The connection is authenticated; the client may now send other frames."""

    user_id: str
    session_id: str
    heartbeat_ms: int


class Pong(Frame, tag="pong", frozen=True):
    """The answer to :class:`Ping`."""


class ErrorFrame(Frame, tag="error", frozen=True):
    """A frame the gateway could not act on; the connection stays open."""

    code: str
    message: str
    # What the failed frame referred to: the client_message_id of a send, else the message or chat id.
    ref: str | None = None


class Ack(Frame, tag="ack", frozen=True):
    """A ``message.send`` is stored; the same answer for a resend."""

    ack_token: str
    message_id: str
    client_message_id: str
    chat_id: str
    seq: int


class MessageNew(Frame, tag="message.new", frozen=True):
    """A message in one of the user's chats (live or replayed on resume)."""

    chat_id: str
    seq: int
    message: Message


class MessageUpdate(Frame, tag="message.update", frozen=True):
    """A message was edited."""

    chat_id: str
    seq: int
    message: Message


class MessageDeleted(Frame, tag="message.delete", frozen=True):
    """A message was deleted; ``message`` is its tombstone."""

    chat_id: str
    seq: int
    message: Message


class TypingStarted(Frame, tag="typing.start", frozen=True):
    """Someone is typing; assume they stopped after ``expires_in_ms`` without another frame."""

    chat_id: str
    user_id: str
    expires_in_ms: int


class TypingStopped(Frame, tag="typing.stop", frozen=True):
    """Someone stopped typing (or their typing state lapsed)."""

    chat_id: str
    user_id: str


class ReadReceipt(Frame, tag="delivery.read", frozen=True):
    """A participant's read position moved forward."""

    chat_id: str
    user_id: str
    message_id: str | None
    seq: int


class PresenceChanged(Frame, tag="presence", frozen=True):
    """A member of this chat (or, without ``chat_id``, a friend) came online or went offline (``status``)."""

    user_id: str
    status: str
    chat_id: str | None = None


class ChatJoined(Frame, tag="chat.joined", frozen=True):
    """The user is now in this chat; its frames follow from here on."""

    chat_id: str


class ChatLeft(Frame, tag="chat.left", frozen=True):
    """The user left (or was removed from) this chat; no more of its frames."""

    chat_id: str


class SystemModeration(Frame, tag="system.moderation", frozen=True):
    """A moderator ``approved`` (now shown to everyone) or ``removed`` a message of this chat."""

    chat_id: str
    message_id: str
    seq: int
    action: str
    moderator_id: str


class ChatUpdate(Frame, tag="chat.update", frozen=True):
    """A chat's settings changed: its ``title`` and ``read_only`` now, and who changed them."""

    chat_id: str
    title: str | None
    read_only: bool
    updated_by: str


class ResumeDone(Frame, tag="resume.done", frozen=True):
    """Every missed message of the ``resume`` map has been replayed; live frames follow."""

    replayed: int


ServerFrame = (
    ConnectionAck
    | Pong
    | ErrorFrame
    | Ack
    | MessageNew
    | MessageUpdate
    | MessageDeleted
    | TypingStarted
    | TypingStopped
    | ReadReceipt
    | PresenceChanged
    | ChatJoined
    | ChatLeft
    | ResumeDone
    | SystemModeration
    | ChatUpdate
)


class FrameError(Exception):
    """A message that is not a well-formed client frame of a supported version."""


_client_decoder: msgspec.json.Decoder[ClientFrame] = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """The client frame in ``data``; :class:`FrameError` says why it is not one."""
    try:
        frame = _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        # msgspec names the field and the expectation, never the offending value (a token stays private).
        raise FrameError(str(exc)) from None
    if frame.version != PROTOCOL_VERSION:
        raise FrameError(f"unsupported frame version {frame.version}")
    return frame


def encode_frame(frame: ServerFrame) -> bytes:
    """UTF-8 JSON of ``frame``, tag included; sent as a text message."""
    return _encoder.encode(frame)
