"""Cursor helpers: limits, round trips, refusal of forged cursors, page assembly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from shared.errors import InvalidInput
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, clamp_limit, decode_cursor, encode_cursor, make_page


class Key(msgspec.Struct):
    at: datetime
    id: uuid.UUID


def test_limits_default_and_cap() -> None:
    assert clamp_limit(None) == DEFAULT_LIMIT == 20
    assert clamp_limit(5) == 5
    assert clamp_limit(1000) == MAX_LIMIT == 100
    with pytest.raises(InvalidInput):
        clamp_limit(0)


def test_cursor_round_trip_is_opaque_and_url_safe() -> None:
    key = Key(at=datetime(2026, 5, 1, 12, tzinfo=UTC), id=uuid.uuid4())
    cursor = encode_cursor(key)
    assert all(c.isalnum() or c in "-_" for c in cursor)
    assert decode_cursor(cursor, Key) == key


@pytest.mark.parametrize(
    "forged", ["", "!!!", "bm90IGpzb24", encode_cursor(Key(at=datetime.now(UTC), id=uuid.uuid4()))[:-3]]
)
def test_forged_cursors_are_invalid_input(forged: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(forged, Key)
    assert caught.value.code == "invalid_cursor"


def test_make_page_uses_the_extra_row_only_as_a_signal() -> None:
    rows = [Key(at=datetime(2026, 1, i + 1, tzinfo=UTC), id=uuid.uuid4()) for i in range(4)]
    page = make_page(rows, 3, lambda k: k)
    assert page.items == rows[:3]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor, Key) == rows[2]
    last = make_page(rows[:2], 3, lambda k: k)
    assert last.next_cursor is None
    assert make_page([], 3, lambda k: k).next_cursor is None
