"""Cursor pagination: opaque keyset cursors and the ``{"items", "next_cursor"}`` page shape.

A cursor is the sort key of the last item a client saw, so pages stay stable while
rows are inserted: the next page starts strictly after that key, never at an offset.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import msgspec

from shared.errors import FieldError, InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")
K = TypeVar("K", bound=msgspec.Struct)


class Page(msgspec.Struct, Generic[T]):
    """One page of a list and the cursor of the next (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None


def clamp_limit(limit: int | None) -> int:
    """The page size to use: the default when absent, at most :data:`MAX_LIMIT`."""
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise InvalidInput(errors=[FieldError("limit", "must be at least 1")])
    return min(limit, MAX_LIMIT)


def encode_cursor(key: msgspec.Struct) -> str:
    """An opaque, URL-safe cursor for a sort key."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).rstrip(b"=").decode()


def decode_cursor(cursor: str, key_type: type[K]) -> K:
    """The sort key inside ``cursor``; 422 ``invalid_cursor`` for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=key_type)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput(
            "the cursor is not valid for this list", code="invalid_cursor", errors=[FieldError("cursor", "invalid")]
        ) from None


def make_page(rows: Sequence[T], limit: int, key_of: Callable[[T], msgspec.Struct]) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says another page exists."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(key_of(items[-1])) if more and items else None)
