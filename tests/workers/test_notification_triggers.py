"""Notifications from domain events through the real relay and burst workers: once per cause, offline only."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis
from arq.constants import result_key_prefix
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import FriendRequested, OutboxRow, chat_subject, record
from shared.domain.chat.presence import Presence
from shared.domain.chat.schemas import CreateChatRequest, SendMessageRequest, TextContent
from shared.domain.chat.services import ChatService
from shared.domain.gamification.models import ActivityCounter
from shared.domain.notifications.models import Notification
from tests.workers.conftest import Drain, MakeUser
from workers.jobs.notifications import NOTIFY_FROM_EVENT

Sessions = async_sessionmaker[AsyncSession]


async def notifications_of(sessions: Sessions, user_id: uuid.UUID, type_: str) -> list[Notification]:
    """The user's notifications of one type."""
    async with sessions() as session:
        query = select(Notification).where(Notification.user_id == user_id, Notification.type == type_)
        return list((await session.scalars(query)).all())


async def relay_again(sessions: Sessions, arq_redis: ArqRedis, row_id: uuid.UUID) -> None:
    """Make the relay hand ``row_id`` on once more and let its notify job run again (as after a lost commit)."""
    async with sessions.begin() as session:
        await session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(published_at=None))
    await arq_redis.delete(result_key_prefix + NOTIFY_FROM_EVENT.job_id(row_id))


async def test_the_same_outbox_row_relayed_twice_notifies_once(
    sessions: Sessions, arq_redis: ArqRedis, make_user: MakeUser, drain: Drain
) -> None:
    sender, recipient = await make_user(display_name="Sam Sender"), await make_user()
    async with sessions.begin() as session:
        [row_id] = await record(
            session, FriendRequested(request_id=ids.uuid7(), sender_id=sender.id, recipient_id=recipient.id)
        )
    await drain()
    [first] = await notifications_of(sessions, recipient.id, "friend_request")
    assert first.payload["sender_name"] == "Sam Sender"
    assert first.dedupe_key == f"friend_request:{row_id}"

    await relay_again(sessions, arq_redis, row_id)
    # The notify job runs again (one job) and stores nothing, so no delivery job follows.
    assert await drain() == 1
    assert [n.id for n in await notifications_of(sessions, recipient.id, "friend_request")] == [first.id]
    assert await notifications_of(sessions, sender.id, "friend_request") == []


async def test_chat_messages_reach_offline_members_only_and_count_for_the_sender(
    sessions: Sessions,
    arq_redis: ArqRedis,
    nats_client: NatsClient,
    make_user: MakeUser,
    drain: Drain,
) -> None:
    alice, offline, online = await make_user(display_name="Alice"), await make_user(), await make_user()
    chat = ChatService(sessions, arq_redis, nats_client)
    view, _ = await chat.create_chat(
        alice.id,
        CreateChatRequest(
            type="group", title="Trail", participant_ids=[ids.encode(ids.Prefix.USER, u.id) for u in (offline, online)]
        ),
    )
    chat_id = ids.decode(ids.Prefix.CHAT, view.id)
    presence = Presence(arq_redis)
    await presence.mark_online("test-gateway", [online.id], ttl_s=30)
    assert await presence.online_of([offline.id, online.id]) == {online.id}

    seen: list[Msg] = []

    async def on_message(msg: Msg) -> None:
        seen.append(msg)

    subscription = await nats_client.subscribe(chat_subject(view.id), cb=on_message)
    try:
        sent = await chat.send_message(
            alice.id, chat_id, SendMessageRequest(content=TextContent(text="on my way"), client_message_id="c1")
        )
        # close() stamps what is pending: the row is then live-published, not published.
        await chat.close()
        async with sessions() as session:
            [row] = (
                await session.scalars(
                    select(OutboxRow).where(OutboxRow.payload["message"]["id"].astext == sent.message.id)
                )
            ).all()
        assert row.live_published_at is not None
        assert row.published_at is None
        await nats_client.flush()
        live = len(seen)
        assert live == 1

        await drain()
        await nats_client.flush()
        # The relay queued the row's jobs without publishing the message a second time.
        assert len(seen) == live
    finally:
        await subscription.unsubscribe()

    async with sessions() as session:
        assert (await session.get(OutboxRow, row.id)).published_at is not None  # type: ignore[union-attr]
        counted = await session.scalar(
            select(ActivityCounter.value).where(
                ActivityCounter.user_id == alice.id, ActivityCounter.counter == "messages"
            )
        )
    assert counted == 1
    [told] = await notifications_of(sessions, offline.id, "chat_message")
    assert (told.payload["preview"], told.payload["sender_name"], told.count) == ("on my way", "Alice", 1)
    assert told.collapse_key == f"chat:{view.id}"
    assert await notifications_of(sessions, online.id, "chat_message") == []
    assert await notifications_of(sessions, alice.id, "chat_message") == []

    # Relayed again: neither a second notification nor a grown one.
    await relay_again(sessions, arq_redis, row.id)
    await drain()
    [again] = await notifications_of(sessions, offline.id, "chat_message")
    assert (again.id, again.count) == (told.id, 1)

    # Once the online member's last socket closes they are told too.
    await presence.mark_offline("test-gateway", online.id)
    assert not await presence.is_online(online.id)
    chat = ChatService(sessions, arq_redis, nats_client)
    await chat.send_message(
        alice.id, chat_id, SendMessageRequest(content=TextContent(text="here"), client_message_id="c2")
    )
    await chat.close()
    await drain()
    [grown] = await notifications_of(sessions, offline.id, "chat_message")
    assert (grown.id, grown.count, grown.payload["preview"]) == (told.id, 2, "here")
    [late] = await notifications_of(sessions, online.id, "chat_message")
    assert late.payload["preview"] == "here"
