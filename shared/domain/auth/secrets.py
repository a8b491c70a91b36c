"""Opaque secrets handed to clients and stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str) -> tuple[str, bytes]:
    """A fresh ``prefix_...`` token with 256 bits of entropy, and the hash to store."""
    raw = f"{prefix}_{secrets.token_urlsafe(32)}"
    return raw, hash_secret(raw)


def hash_secret(raw: str) -> bytes:
    """SHA-256 of a token; enough for high-entropy secrets, and indexable."""
    return hashlib.sha256(raw.encode()).digest()
