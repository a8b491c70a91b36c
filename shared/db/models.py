"""Imports every table so ``Base.metadata`` is complete (Alembic and drift checks use it)."""

from shared.bus import OutboxRow
from shared.db.base import Base
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.chat.models import Chat, ChatMessage, ChatParticipant
from shared.domain.clubs.models import Club, ClubInvitation, ClubInviteLink, ClubMembership, ClubSpace
from shared.domain.discovery.models import (
    CuratedList,
    CuratedListItem,
    IcebreakerPrompt,
    Place,
    Recommendation,
    RecommendationDismissal,
    RecommendationRun,
)
from shared.domain.events.models import CalendarFeed, Event, EventStaff, ReminderSent, Rsvp, RsvpChange
from shared.domain.gamification.models import (
    ActivityCounter,
    Badge,
    CountedCause,
    LeaderboardSnapshot,
    PointAward,
    Streak,
    UserBadge,
)
from shared.domain.media.models import Media, MediaAuditEntry, ModerationCase
from shared.domain.moderation.models import BlocklistTerm, MessageCase, ModerationAuditEntry
from shared.domain.notifications.models import (
    Device,
    Notification,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
)
from shared.domain.payments.models import (
    Boost,
    IdempotencyKey,
    LedgerEntry,
    MemberTier,
    Plan,
    PromoCode,
    PromoRedemption,
    StripeCustomer,
    Subscription,
    WebhookEvent,
)
from shared.domain.payments.ticket_models import Payout, PayoutAccount, TicketPayment, TicketRefund
from shared.domain.posts.models import Comment, CommentReaction, Post, PostReaction
from shared.domain.search import models as search_models
from shared.domain.social.models import Block, Follow, FriendRequest, Friendship, InviteCode, Vouch
from shared.domain.users.models import User

__all__ = [
    "ActivityCounter",
    "AuthSession",
    "Badge",
    "Base",
    "Block",
    "BlocklistTerm",
    "Boost",
    "CalendarFeed",
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
    "CountedCause",
    "CuratedList",
    "CuratedListItem",
    "Device",
    "Event",
    "EventStaff",
    "Follow",
    "FriendRequest",
    "Friendship",
    "IcebreakerPrompt",
    "IdempotencyKey",
    "InviteCode",
    "LeaderboardSnapshot",
    "LedgerEntry",
    "Media",
    "MediaAuditEntry",
    "MemberTier",
    "MessageCase",
    "ModerationAuditEntry",
    "ModerationCase",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "NotificationSettings",
    "OneTimeToken",
    "OutboxRow",
    "Payout",
    "PayoutAccount",
    "Place",
    "Plan",
    "PointAward",
    "Post",
    "PostReaction",
    "PromoCode",
    "PromoRedemption",
    "Recommendation",
    "RecommendationDismissal",
    "RecommendationRun",
    "RefreshToken",
    "ReminderSent",
    "Rsvp",
    "RsvpChange",
    "Streak",
    "StripeCustomer",
    "Subscription",
    "TicketPayment",
    "TicketRefund",
    "User",
    "UserBadge",
    "Vouch",
    "WebhookEvent",
    "search_models",
]
