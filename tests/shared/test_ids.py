"""Public ids: round trips, time order, and refusal of malformed or foreign ids."""

from __future__ import annotations

import uuid

import pytest

from shared import ids


def test_round_trip_and_prefix() -> None:
    value = ids.uuid7()
    public = ids.encode(ids.Prefix.USER, value)
    assert public.startswith("usr_")
    assert ids.decode(ids.Prefix.USER, public) == value
    assert value.version == 7


def test_uuid7_is_time_ordered() -> None:
    values = [ids.uuid7() for _ in range(200)]
    stamps = [v.int >> 80 for v in values]
    assert stamps == sorted(stamps)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "usr_",
        "usr",
        "usr_short",
        "evt_01m80grxbre6erwz8gytwpvfv6",
        "usr_01m80grxbre6erwz8gytwpvfvU",
        "usr_z1m80grxbre6erwz8gytwpvfv6",
    ],
)
def test_malformed_or_foreign_ids_are_refused(bad: str) -> None:
    with pytest.raises(ids.InvalidId):
        ids.decode(ids.Prefix.USER, bad)


def test_uuid7_strictly_increases_within_a_process() -> None:
    made = [ids.uuid7() for _ in range(20_000)]  # many per millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {u.version for u in made} == {7}


@pytest.mark.parametrize("bit", [None, *range(128)])
def test_encoding_is_big_endian_base32_of_every_bit(bit: int | None) -> None:
    # Each 5-bit group, most significant first, is one Crockford symbol: checked symbol by symbol.
    value = uuid.UUID(int=0 if bit is None else 1 << bit)
    body = ids.encode(ids.Prefix.CLUB, value).removeprefix("club_")
    expected = "".join("0123456789abcdefghjkmnpqrstvwxyz"[value.int >> (5 * (25 - i)) & 31] for i in range(26))
    assert body == expected
    assert ids.decode(ids.Prefix.CLUB, f"club_{body}") == value


def test_all_ones_encodes_to_the_largest_id() -> None:
    value = uuid.UUID(int=(1 << 128) - 1)
    public = ids.encode(ids.Prefix.USER, value)
    assert public == "usr_7" + "z" * 25
    assert ids.decode(ids.Prefix.USER, public) == value
