"""Premium tiers and their order, shared by every feature that gates on a tier."""

from __future__ import annotations

from typing import Literal

TierName = Literal["plus", "pro"]
TIER_RANK: dict[str, int] = {"plus": 1, "pro": 2}


def tier_satisfies(user_tier: str | None, required_tier: str | None) -> bool:
    """Whether a user with ``user_tier`` may enter something that requires ``required_tier``."""
    if required_tier is None:
        return True
    return user_tier is not None and TIER_RANK.get(user_tier, 0) >= TIER_RANK.get(required_tier, len(TIER_RANK) + 1)
