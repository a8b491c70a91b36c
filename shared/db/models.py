"""Imports every table so ``Base.metadata`` is complete (Alembic and drift checks use it)."""

from shared.bus import OutboxRow
from shared.db.base import Base
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.clubs.models import Club, ClubInvitation, ClubInviteLink, ClubMembership, ClubSpace
from shared.domain.events.models import CalendarFeed, Event, EventStaff, ReminderSent, Rsvp, RsvpChange
from shared.domain.social.models import Block, Follow, FriendRequest, Friendship, InviteCode, Vouch
from shared.domain.users.models import User

__all__ = [
    "AuthSession",
    "Base",
    "Block",
    "CalendarFeed",
    "Club",
    "ClubInvitation",
    "ClubInviteLink",
    "ClubMembership",
    "ClubSpace",
    "Event",
    "EventStaff",
    "Follow",
    "FriendRequest",
    "Friendship",
    "InviteCode",
    "OneTimeToken",
    "OutboxRow",
    "RefreshToken",
    "ReminderSent",
    "Rsvp",
    "RsvpChange",
    "User",
    "Vouch",
]
