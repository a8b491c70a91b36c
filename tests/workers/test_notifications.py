"""Notification delivery through a real burst worker: NATS live event, push sink, SMTP sink, quiet hours, digest."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from email.message import EmailMessage
from pathlib import Path

import msgspec
import pytest
import time_machine
from arq.connections import ArqRedis
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import user_subject
from shared.config import Settings
from shared.dev.stack import EmbeddedStack
from shared.domain.notifications.delivery import (
    ExpoPushProvider,
    Senders,
    deliver,
    quiet_hours_end,
    send_digest,
    user_zone,
    users_due_for_digest,
)
from shared.domain.notifications.models import Device, Notification, NotificationDelivery
from shared.domain.notifications.schemas import (
    Channel,
    ChannelSwitches,
    DeviceRegistration,
    NotificationNew,
    PreferencesUpdate,
    QuietHours,
)
from shared.domain.notifications.services import NotificationService, UnsubscribeTokens, notify
from shared.mail import Mailer
from tests.workers.conftest import Drain, FindMail, MakeUser

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="session")
def push_dir(engine_stack: tuple[EmbeddedStack, dict[str, str]]) -> Path:
    """Where the push sink stores each request."""
    return engine_stack[0].push_dir


@pytest.fixture
def service(sessions: Sessions, settings: Settings) -> NotificationService:
    """The recipient-side service on the test database."""
    return NotificationService(sessions, sessions, UnsubscribeTokens(settings.jwt_secret))


@pytest.fixture
async def senders(settings: Settings) -> AsyncIterator[Senders]:
    """What the worker sends with, built the same way."""
    assert settings.push_url, "the stack runs the push sink"
    push = ExpoPushProvider(settings.push_url)
    yield Senders(
        mailer=Mailer.from_settings(settings),
        push=push,
        unsubscribe=UnsubscribeTokens(settings.jwt_secret),
        public_api_url=settings.public_api_url,
    )
    await push.aclose()


def pushes_to(push_dir: Path, token: str) -> list[dict[str, object]]:
    """Every message the push sink received for ``token``."""
    found = []
    for path in sorted(push_dir.glob("*.json")):
        for message in json.loads(path.read_text()):
            if message.get("to") == token:
                found.append(message)
    return found


async def deliveries(sessions: Sessions, notification_id: uuid.UUID) -> dict[str, NotificationDelivery]:
    """The delivery log of one notification by channel."""
    async with sessions() as session:
        rows = (
            await session.scalars(
                select(NotificationDelivery).where(NotificationDelivery.notification_id == notification_id)
            )
        ).all()
    return {row.channel: row for row in rows}


async def create(sessions: Sessions, user_id: uuid.UUID, type_: str, **payload: str | int) -> uuid.UUID:
    """Notify the way a feature does, in its own transaction."""
    async with sessions.begin() as session:
        created = await notify(session, user_id, type_, dict(payload))
    assert created is not None
    return created


async def test_notification_new_is_published_on_the_users_subject(
    sessions: Sessions, make_user: MakeUser, nats_client: NatsClient, drain: Drain
) -> None:
    user = await make_user()
    received: list[Msg] = []
    arrived = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        received.append(msg)
        arrived.set()

    await nats_client.subscribe(user_subject(ids.encode(ids.Prefix.USER, user.id)), cb=on_message)
    await nats_client.flush()
    notification_id = await create(sessions, user.id, "streak_reminder", current_streak=4)

    await drain()

    async with asyncio.timeout(10):
        await arrived.wait()
    [msg] = received
    event = msgspec.json.decode(msg.data, type=NotificationNew)
    assert event.notification.type == "streak_reminder"
    assert event.notification.title == "Keep your 4-day streak"
    assert event.notification.read_at is None
    log = await deliveries(sessions, notification_id)
    assert log["in_app"].status == "sent"
    assert (log["push"].status, log["push"].error) == ("skipped", "no registered device")
    assert (log["email"].status, log["email"].error) == ("skipped", "turned off")


async def test_push_goes_through_the_sink_and_invalid_tokens_are_removed(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, drain: Drain, push_dir: Path
) -> None:
    user = await make_user()
    good = f"ExponentPushToken[{uuid.uuid4().hex}]"
    gone = f"ExponentPushToken[invalid-{uuid.uuid4().hex}]"
    await service.register_device(user.id, DeviceRegistration(platform="ios", token=good))
    await service.register_device(user.id, DeviceRegistration(platform="android", token=gone))
    notification_id = await create(sessions, user.id, "event_reminder", event_title="Sunset Run", starts_at="18:00")

    await drain()

    [message] = pushes_to(push_dir, good)
    assert message["title"] == "Sunset Run starts soon"
    assert message["body"] == "Starts at 18:00."
    assert message["data"] == {
        "notification_id": ids.encode(ids.Prefix.NOTIFICATION, notification_id),
        "type": "event_reminder",
    }
    assert len(pushes_to(push_dir, gone)) == 1
    async with sessions() as session:
        tokens = set((await session.scalars(select(Device.token).where(Device.user_id == user.id))).all())
    assert tokens == {good}
    log = await deliveries(sessions, notification_id)
    assert log["push"].status == "sent"
    assert log["push"].error is not None
    assert "not a registered push notification recipient" in log["push"].error


async def test_content_free_push_carries_ids_only(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, drain: Drain, push_dir: Path
) -> None:
    user = await make_user()
    token = f"ExponentPushToken[{uuid.uuid4().hex}]"
    await service.register_device(user.id, DeviceRegistration(platform="web", token=token))
    await service.update_preferences(user.id, PreferencesUpdate(content_free_push=True))
    await create(sessions, user.id, "friend_request", sender_name="Secret Admirer")

    await drain()

    [message] = pushes_to(push_dir, token)
    assert "title" not in message
    assert "body" not in message
    assert "Secret Admirer" not in json.dumps(message)
    assert message["data"]["type"] == "friend_request"  # type: ignore[index]


async def test_email_has_text_html_and_a_working_unsubscribe_link(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, drain: Drain, find_mail: FindMail
) -> None:
    user = await make_user()
    marker = uuid.uuid4().hex[:10]
    notification_id = await create(sessions, user.id, "rsvp_confirmed", event_title=f"Jazz night {marker}")

    await drain()

    [mail] = find_mail(f"You're going to Jazz night {marker}")
    assert mail["To"] == user.email
    text = mail.get_body(("plain",))
    page = mail.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(page, EmailMessage)
    assert "Your spot is confirmed." in text.get_content()
    assert "<h2>You&#x27;re going to Jazz night" in page.get_content()
    link = str(mail["List-Unsubscribe"]).strip("<>")
    assert link in text.get_content()
    token = link.split("token=", 1)[1]
    assert (await deliveries(sessions, notification_id))["email"].status == "sent"

    result = await service.unsubscribe(token)

    assert (result.type, result.channel, result.enabled) == ("rsvp_confirmed", "email", False)
    prefs = await service.preferences(user.id)
    assert prefs.types["rsvp_confirmed"].email is False
    assert prefs.types["rsvp_approved"].email is True
    again = await create(sessions, user.id, "rsvp_confirmed", event_title=f"Second {marker}")
    await drain()
    assert find_mail(f"You're going to Second {marker}") == []
    assert (await deliveries(sessions, again))["email"].status == "skipped"


async def test_preferences_route_each_channel(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, drain: Drain, push_dir: Path
) -> None:
    user = await make_user()
    token = f"ExponentPushToken[{uuid.uuid4().hex}]"
    await service.register_device(user.id, DeviceRegistration(platform="ios", token=token))
    await service.update_preferences(
        user.id,
        PreferencesUpdate(
            types={
                "club_join_approved": ChannelSwitches(push=False, email=True),
                "friend_request": ChannelSwitches(in_app=False),
            }
        ),
    )
    approved = await create(sessions, user.id, "club_join_approved", club_name="Hikers")
    request = await create(sessions, user.id, "friend_request", sender_name="Ann")

    await drain()

    log = await deliveries(sessions, approved)
    assert {c: r.status for c, r in log.items()} == {"in_app": "sent", "push": "skipped", "email": "sent"}
    log = await deliveries(sessions, request)
    assert {c: r.status for c, r in log.items()} == {"in_app": "skipped", "push": "sent", "email": "skipped"}
    assert [m["data"]["type"] for m in pushes_to(push_dir, token)] == ["friend_request"]  # type: ignore[index]
    page = await service.list(user.id, unread_only=True, cursor=None, limit=None)
    assert [item.type for item in page.items] == ["club_join_approved"]


def test_quiet_hours_end_across_midnight_and_dst() -> None:
    zone = user_zone("America/New_York")
    start, end = time(22, 0), time(7, 0)
    # 22:30 EST on Nov 22 -> 07:00 EST on Nov 23 (12:00 UTC).
    assert quiet_hours_end(datetime(2026, 11, 23, 3, 30, tzinfo=UTC), zone, start, end) == datetime(
        2026, 11, 23, 12, 0, tzinfo=UTC
    )
    # 01:00 EDT on Nov 1, the night clocks go back: the window ends at 07:00 EST (12:00 UTC).
    assert quiet_hours_end(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), zone, start, end) == datetime(
        2026, 11, 1, 12, 0, tzinfo=UTC
    )
    # 12:00 local: outside.
    assert quiet_hours_end(datetime(2026, 11, 23, 17, 0, tzinfo=UTC), zone, start, end) is None
    # A daytime window (13:00-15:00) does not span midnight.
    assert quiet_hours_end(datetime(2026, 11, 23, 19, 0, tzinfo=UTC), zone, time(13), time(15)) == datetime(
        2026, 11, 23, 20, 0, tzinfo=UTC
    )


async def test_quiet_hours_defer_push_and_email_but_not_in_app(
    sessions: Sessions,
    service: NotificationService,
    make_user: MakeUser,
    drain: Drain,
    arq_redis: ArqRedis,
    queue_name: str,
    push_dir: Path,
    find_mail: FindMail,
) -> None:
    user = await make_user(timezone="America/New_York")
    token = f"ExponentPushToken[{uuid.uuid4().hex}]"
    await service.register_device(user.id, DeviceRegistration(platform="ios", token=token))
    await service.update_preferences(user.id, PreferencesUpdate(quiet_hours=QuietHours(start="22:00", end="07:00")))
    marker = uuid.uuid4().hex[:10]
    quiet_end = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 11, 23, 3, 30, tzinfo=UTC), tick=True):
        notification_id = await create(sessions, user.id, "rsvp_approved", event_title=f"Late {marker}")
        # Only the dispatch runs now; the deliveries wait in the queue for the end of quiet hours.
        await drain()
        log = await deliveries(sessions, notification_id)
        assert log["in_app"].status == "sent"
        assert {log["push"].status, log["email"].status} == {"pending"}
        assert log["push"].scheduled_for == quiet_end
        scores = {job.decode(): score for job, score in await arq_redis.zrange(queue_name, 0, -1, withscores=True)}
        assert scores == {
            f"deliver_notification:{notification_id}:push": quiet_end.timestamp() * 1000,
            f"deliver_notification:{notification_id}:email": quiet_end.timestamp() * 1000,
        }
        assert pushes_to(push_dir, token) == []

    with time_machine.travel(datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC), tick=True):
        await drain()

    assert len(pushes_to(push_dir, token)) == 1
    assert len(find_mail(f"Your RSVP to Late {marker} was approved")) == 1
    log = await deliveries(sessions, notification_id)
    assert {log["push"].status, log["email"].status} == {"sent"}


async def test_a_delivery_run_twice_at_once_sends_once(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, senders: Senders, push_dir: Path
) -> None:
    user = await make_user()
    token = f"ExponentPushToken[{uuid.uuid4().hex}]"
    await service.register_device(user.id, DeviceRegistration(platform="ios", token=token))
    notification_id = await create(sessions, user.id, "event_cancelled", event_title="Picnic")
    async with sessions.begin() as session:
        session.add(
            NotificationDelivery(notification_id=notification_id, user_id=user.id, channel="push", status="pending")
        )

    async def run() -> str:
        async with sessions.begin() as session:
            return await deliver(session, notification_id, Channel.PUSH, senders)

    results = await asyncio.gather(run(), run(), run())

    assert sorted(results) == ["sent", "sent", "sent"]
    assert len(pushes_to(push_dir, token)) == 1
    log = await deliveries(sessions, notification_id)
    assert log["push"].attempts == 1


async def test_low_priority_email_waits_for_the_daily_digest(
    sessions: Sessions,
    service: NotificationService,
    make_user: MakeUser,
    drain: Drain,
    senders: Senders,
    find_mail: FindMail,
) -> None:
    user = await make_user()
    await service.update_preferences(user.id, PreferencesUpdate(daily_digest=True))
    marker = uuid.uuid4().hex[:10]
    first = await create(sessions, user.id, "premium_offer", offer_title=f"Offer {marker}", offer_body="Half price")
    second = await create(sessions, user.id, "event_updated", event_title=f"Quiz {marker}")
    await drain()
    assert find_mail(f"Offer {marker}") == []
    assert (await deliveries(sessions, first))["email"].status == "digest_pending"
    today = datetime(2026, 11, 24, tzinfo=UTC).date()

    async with sessions.begin() as session:
        assert await send_digest(session, user.id, senders, today) == 2
    async with sessions.begin() as session:
        assert await send_digest(session, user.id, senders, today) == 0

    [mail] = [m for m in find_mail("Your Tribe digest for 2026-11-24") if m["To"] == user.email]
    text = mail.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    assert f"Offer {marker} - Half price" in text.get_content()
    assert f"Quiz {marker} changed" in text.get_content()
    assert (await deliveries(sessions, second))["email"].status == "sent"


async def test_dedupe_and_collapse_keys(sessions: Sessions, service: NotificationService, make_user: MakeUser) -> None:
    user = await make_user()
    async with sessions.begin() as session:
        first = await notify(session, user.id, "badge_earned", {"badge_name": "X"}, dedupe_key="badge:x")
        repeat = await notify(session, user.id, "badge_earned", {"badge_name": "X"}, dedupe_key="badge:x")
        chat_a = await notify(session, user.id, "chat_message", {"preview": "hi"}, collapse_key="chat:1")
        chat_b = await notify(session, user.id, "chat_message", {"preview": "there"}, collapse_key="chat:1")
    assert first is not None
    assert repeat is None
    assert chat_a == chat_b
    async with sessions() as session:
        row = await session.get(Notification, chat_a)
    assert row is not None
    assert (row.count, row.payload) == (2, {"preview": "there"})
    assert (await service.unread_count(user.id)).count == 2
    with pytest.raises(ValueError, match="unknown notification type"):
        async with sessions.begin() as session:
            await notify(session, user.id, "no_such_type", {})


def test_unsubscribe_tokens_are_signed(settings: Settings) -> None:
    tokens = UnsubscribeTokens(settings.jwt_secret)
    user_id = uuid.uuid4()
    token = tokens.issue(user_id, "event_updated")
    assert tokens.verify(token) == (user_id, "event_updated")
    body, _, signature = token.partition(".")
    forged = UnsubscribeTokens("another-secret-that-is-long-enough-0123456789").issue(user_id, "event_updated")
    from shared.errors import InvalidInput

    for bad in (forged, f"{body}.{signature[::-1]}", "nonsense", ""):
        with pytest.raises(InvalidInput):
            tokens.verify(bad)


async def test_digest_is_due_at_the_users_local_morning(
    sessions: Sessions, service: NotificationService, make_user: MakeUser, drain: Drain
) -> None:
    user = await make_user(timezone="Asia/Tokyo")  # UTC+9: 08:00 local is 23:00Z the day before
    await service.update_preferences(user.id, PreferencesUpdate(daily_digest=True))
    await create(sessions, user.id, "premium_offer", offer_title="Digest me", offer_body="later")
    await drain()

    async with sessions() as session:
        at_eight = await users_due_for_digest(session, datetime(2026, 11, 22, 23, 10, tzinfo=UTC))
        at_ten = await users_due_for_digest(session, datetime(2026, 11, 23, 1, 10, tzinfo=UTC))
    assert user.id in at_eight
    assert user.id not in at_ten
