"""Notification types, channels, and the REST and NATS bodies of the notifications feature."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

PayloadValue = str | int | float | bool | None
Payload = dict[str, PayloadValue]
"""A notification's payload: a flat JSON object (ids, titles, counts) the clients render from."""


class Channel(StrEnum):
    """Where a notification goes."""

    IN_APP = "in_app"
    PUSH = "push"
    EMAIL = "email"


class Priority(StrEnum):
    """Low-priority types may be batched into the daily email digest."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """How one notification type is titled and delivered unless the user says otherwise."""

    title: str
    body: str
    priority: Priority
    push: bool = True
    email: bool = False


NOTIFICATION_TYPES: dict[str, TypeInfo] = {
    "rsvp_confirmed": TypeInfo("You're going to {event_title}", "Your spot is confirmed.", Priority.HIGH, email=True),
    "waitlist_promoted": TypeInfo(
        "A spot opened up at {event_title}", "You moved off the waitlist.", Priority.HIGH, email=True
    ),
    "rsvp_approved": TypeInfo("Your RSVP to {event_title} was approved", "See you there.", Priority.HIGH, email=True),
    "event_reminder": TypeInfo("{event_title} starts soon", "Starts at {starts_at}.", Priority.HIGH),
    "event_cancelled": TypeInfo(
        "{event_title} was cancelled", "The organizer cancelled it.", Priority.HIGH, email=True
    ),
    "event_updated": TypeInfo("{event_title} changed", "Check the new details.", Priority.LOW, email=True),
    "chat_message": TypeInfo("{sender_name}", "{preview}", Priority.NORMAL),
    "streak_reminder": TypeInfo(
        "Keep your {current_streak}-day streak", "Check in today to keep it going.", Priority.NORMAL
    ),
    "badge_earned": TypeInfo("You earned {badge_name}", "{badge_description}", Priority.NORMAL, email=True),
    "club_join_approved": TypeInfo("Welcome to {club_name}", "Your request to join was approved.", Priority.HIGH),
    "friend_request": TypeInfo("{sender_name} wants to connect", "Open Tribe to answer.", Priority.NORMAL),
    "premium_offer": TypeInfo("{offer_title}", "{offer_body}", Priority.LOW, push=False, email=True),
    "ticket_offered": TypeInfo(
        "A seat opened up at {event_title}", "Pay before {expires_at} to keep it.", Priority.HIGH, email=True
    ),
    "ticket_refunded": TypeInfo("Your ticket to {event_title} was refunded", "{amount}", Priority.HIGH, email=True),
}
"""Every notification type; a feature adds its types here."""

NotificationType = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class _Defaulting(dict[str, PayloadValue]):
    def __missing__(self, key: str) -> str:
        return ""


def render(type_: str, payload: Payload) -> tuple[str, str]:
    """The title and body of a notification, its placeholders filled from the payload."""
    info = NOTIFICATION_TYPES[type_]
    values = _Defaulting(payload)
    return info.title.format_map(values).strip(), info.body.format_map(values).strip()


class NotificationView(msgspec.Struct):
    """One notification as its recipient sees it."""

    id: str
    type: str
    title: str
    body: str
    payload: Payload
    count: int
    created_at: datetime
    read_at: datetime | None


class NotificationNew(msgspec.Struct, frozen=True, tag="notification.new", tag_field="type"):
    """The live event on NATS ``user.<user_id>``: a notification arrived (or a collapsed one grew)."""

    notification: NotificationView
    version: int = 1


class UnreadCount(msgspec.Struct):
    """How many notifications the caller has not read."""

    count: int


class ReadAllResult(msgspec.Struct):
    """How many notifications ``read-all`` marked."""

    updated: int


LocalTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])]


class QuietHours(msgspec.Struct, forbid_unknown_fields=True):
    """A daily window, in the user's local time, when push and email wait; ``start > end`` spans midnight."""

    start: LocalTime
    end: LocalTime


class ChannelSwitches(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """On/off per channel for one type; an absent channel keeps its current value."""

    in_app: bool | msgspec.UnsetType = msgspec.UNSET
    push: bool | msgspec.UnsetType = msgspec.UNSET
    email: bool | msgspec.UnsetType = msgspec.UNSET


class ChannelState(msgspec.Struct):
    """The effective on/off of each channel for one type."""

    in_app: bool
    push: bool
    email: bool


class Preferences(msgspec.Struct):
    """Every type and channel switch and the delivery settings."""

    types: dict[str, ChannelState]
    quiet_hours: QuietHours | None
    daily_digest: bool
    content_free_push: bool


class PreferencesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Changes to preferences; absent fields stay as they are, ``quiet_hours: null`` turns them off."""

    types: dict[NotificationType, ChannelSwitches] | msgspec.UnsetType = msgspec.UNSET
    quiet_hours: QuietHours | msgspec.UnsetType | None = msgspec.UNSET
    daily_digest: bool | msgspec.UnsetType = msgspec.UNSET
    content_free_push: bool | msgspec.UnsetType = msgspec.UNSET


class Unsubscribed(msgspec.Struct):
    """What the unsubscribe link answers."""

    type: str
    channel: str
    enabled: bool


PushToken = Annotated[str, msgspec.Meta(min_length=8, max_length=255)]


class DeviceRegistration(msgspec.Struct, forbid_unknown_fields=True):
    """A push token of the caller's device."""

    platform: Literal["ios", "android", "web"]
    token: PushToken


class DeviceView(msgspec.Struct):
    """A registered device."""

    platform: str
    token: str
    created_at: datetime
