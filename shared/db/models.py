"""Imports every table so ``Base.metadata`` is complete (Alembic and drift checks use it)."""

from shared.bus import OutboxRow
from shared.db.base import Base
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.gamification.models import (
    ActivityCounter,
    Badge,
    CountedCause,
    LeaderboardSnapshot,
    PointAward,
    Streak,
    UserBadge,
)
from shared.domain.notifications.models import (
    Device,
    Notification,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
)
from shared.domain.users.models import User

__all__ = [
    "ActivityCounter",
    "AuthSession",
    "Badge",
    "Base",
    "CountedCause",
    "Device",
    "LeaderboardSnapshot",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "NotificationSettings",
    "OneTimeToken",
    "OutboxRow",
    "PointAward",
    "RefreshToken",
    "Streak",
    "User",
    "UserBadge",
]
