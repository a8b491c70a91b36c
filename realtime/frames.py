"""Protocol frames of the gateway: versioned msgspec structs, tagged by ``type``.

Every frame is one JSON object in one text message. ``version`` is omitted on the
wire while it is 1, so a frame without it is a version 1 frame.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

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


class Ping(Frame, tag="ping", frozen=True):
    """An application-level liveness check; answered with :class:`Pong`."""


ClientFrame = ConnectionInit | Ping


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


ServerFrame = ConnectionAck | Pong | ErrorFrame


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
