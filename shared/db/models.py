"""Imports every table so ``Base.metadata`` is complete (Alembic and drift checks use it)."""

from shared.bus import OutboxRow
from shared.db.base import Base
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.chat.models import Chat, ChatMessage, ChatParticipant
from shared.domain.users.models import User

__all__ = [
    "AuthSession",
    "Base",
    "Chat",
    "ChatMessage",
    "ChatParticipant",
    "OneTimeToken",
    "OutboxRow",
    "RefreshToken",
    "User",
]
