"""Imports every table so ``Base.metadata`` is complete (Alembic and drift checks use it)."""

from shared.bus import OutboxRow
from shared.db.base import Base
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.chat.models import Chat, ChatMessage, ChatParticipant
from shared.domain.clubs.models import Club, ClubInvitation, ClubInviteLink, ClubMembership, ClubSpace
from shared.domain.media.models import Media, MediaAuditEntry, ModerationCase
from shared.domain.payments.models import IdempotencyKey, LedgerEntry, Plan, StripeCustomer, Subscription, WebhookEvent
from shared.domain.posts.models import Comment, CommentReaction, Post, PostReaction
from shared.domain.search import models as search_models
from shared.domain.social.models import Block, Follow, FriendRequest, Friendship, InviteCode, Vouch
from shared.domain.users.models import User

__all__ = [
    "AuthSession",
    "Base",
    "Block",
    "Chat",
    "ChatMessage",
    "ChatParticipant",
    "Club",
    "ClubInvitation",
    "ClubInviteLink",
    "ClubMembership",
    "ClubSpace",
    "Comment",
    "CommentReaction",
    "Follow",
    "FriendRequest",
    "Friendship",
    "IdempotencyKey",
    "InviteCode",
    "LedgerEntry",
    "Media",
    "MediaAuditEntry",
    "ModerationCase",
    "OneTimeToken",
    "OutboxRow",
    "Plan",
    "Post",
    "PostReaction",
    "RefreshToken",
    "StripeCustomer",
    "Subscription",
    "User",
    "Vouch",
    "WebhookEvent",
    "search_models",
]
