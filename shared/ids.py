"""Prefixed public ids (``usr_...``) over UUIDv7 primary keys, encoded in one place."""

from __future__ import annotations

import os
import threading
import time
import uuid
from enum import StrEnum

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_ENCODED_LEN = 26  # 128 bits in 5-bit symbols
# Every pair of symbols (10 bits) and where each pair sits: 13 lookups per id instead of 26 steps,
# since every response encodes its ids.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_PAIR_SHIFTS = tuple(range(120, -1, -10))
_uuid7_lock = threading.Lock()
_last_uuid7 = 0  # the previous uuid7 made by this process, as an int


class Prefix(StrEnum):
    """The kinds of public id; each prefix belongs to one table."""

    USER = "usr"
    CLUB = "club"
    SPACE = "spc"
    EVENT = "evt"
    CHAT = "chat"
    MESSAGE = "msg"
    POST = "post"
    COMMENT = "cmt"
    RSVP = "rsvp"
    MEDIA = "med"
    NOTIFICATION = "ntf"
    SUBSCRIPTION = "sub"
    PAYMENT = "pay"
    TRANSACTION = "txn"
    BOOST = "boost"
    SESSION = "ses"
    FRIEND_REQUEST = "frq"
    VOUCH = "vch"
    MODERATION_CASE = "mcase"
    # Chat moderation cases (media keeps its own ``mcase_`` cases) and blocklist terms.
    CASE = "case"
    BLOCKLIST_TERM = "blt"
    MEMBER_TIER = "tier"
    PLACE = "plc"
    LIST = "lst"
    TICKET_PAYMENT = "tpay"
    PAYOUT = "po"


class InvalidId(ValueError):
    """A public id that is malformed or of another kind."""


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit ms timestamp, then random bits.

    Within one process the ids strictly increase (RFC 9562 §6.2, method 3): an id made in the same
    millisecond as the previous one is that one plus a random step, so rows written in one transaction
    (outbox events, RSVP history) sort in the order they were made.
    """
    global _last_uuid7
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = _v7_bits((ms & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1))
    with _uuid7_lock:
        if value <= _last_uuid7:
            # Same (or an earlier, clock stepped back) millisecond: step up from the last id. The step
            # stays in the 62 low random bits, so the version and variant bits are left as they are.
            value = _v7_bits(_last_uuid7 + 1 + (rand & 0xFFFF))
        _last_uuid7 = value
    return uuid.UUID(int=value)


def _v7_bits(value: int) -> int:
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    return (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant


def encode(prefix: Prefix, value: uuid.UUID) -> str:
    """``usr_`` + the UUID in 26 base32 symbols."""
    n = value.int
    return f"{prefix.value}_{''.join([_PAIRS[n >> shift & 1023] for shift in _PAIR_SHIFTS])}"


def decode(prefix: Prefix, public_id: str) -> uuid.UUID:
    """The UUID behind ``public_id``; raises :class:`InvalidId` unless it is a well-formed ``prefix`` id."""
    head, sep, body = public_id.partition("_")
    if not sep or head != prefix.value or len(body) != _ENCODED_LEN:
        raise InvalidId(f"not a valid {prefix.value}_ id")
    n = 0
    for char in body:
        digit = _DECODE.get(char)
        if digit is None:
            raise InvalidId(f"not a valid {prefix.value}_ id")
        n = n << 5 | digit
    if n >> 128:
        raise InvalidId(f"not a valid {prefix.value}_ id")
    return uuid.UUID(int=n)
