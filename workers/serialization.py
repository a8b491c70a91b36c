"""arq's job and result codec: MessagePack through msgspec, never pickle."""

from __future__ import annotations

from typing import Any

import msgspec

_PICKLE_PROTO = b"\x80"


class JobCodecError(ValueError):
    """Bytes that are not a job or result this codec wrote (pickle included)."""


def _enc_hook(obj: Any) -> Any:
    # arq stores the exception of a failed job as its result; keep its name and message, not the object.
    if isinstance(obj, BaseException):
        return {"error": type(obj).__qualname__, "message": str(obj)}
    raise TypeError(f"arq job values must be msgspec-encodable, got {type(obj).__qualname__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def job_serializer(data: dict[str, Any]) -> bytes:
    """Encode an arq job or result envelope; unknown types raise ``TypeError`` instead of falling back to pickle."""
    return _encoder.encode(data)


def job_deserializer(data: bytes) -> dict[str, Any]:
    """Decode an envelope written by :func:`job_serializer`; pickle and other foreign bytes raise ``JobCodecError``."""
    if data[:1] == _PICKLE_PROTO:
        # Protocol 2+ pickles start with PROTO; msgpack would read it as an empty map and fail less clearly.
        raise JobCodecError("refusing a pickle payload; jobs must be enqueued with the msgspec serializer")
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise JobCodecError(f"not a msgpack job envelope: {exc}") from None
