"""``/v1/chats`` through the real API process: chats, members, messages, typing, read state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import func, select, update
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.bus import ChatLiveEvent, ChatMessagePosted, OutboxRow, decode_live_event
from shared.domain.chat.models import ChatMessage
from tests.api.conftest import Account, MakeAccount


def text(body: str) -> dict[str, object]:
    """A text content object."""
    return {"type": "text", "text": body}


async def direct_chat(client: httpx.AsyncClient, a: Account, b: Account) -> str:
    response = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [b.id]}, headers=a.headers)
    assert response.status_code in (200, 201), response.text
    chat_id: str = response.json()["id"]
    return chat_id


async def group_chat(client: httpx.AsyncClient, admin: Account, *members: Account, title: str = "Hikers") -> str:
    response = await client.post(
        "/v1/chats",
        json={"type": "group", "title": title, "participant_ids": [m.id for m in members]},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    chat_id: str = response.json()["id"]
    return chat_id


async def send(
    client: httpx.AsyncClient, who: Account, chat_id: str, body: str, client_message_id: str | None = None
) -> httpx.Response:
    payload = {"client_message_id": client_message_id or uuid.uuid4().hex, "content": text(body)}
    return await client.post(f"/v1/chats/{chat_id}/messages", json=payload, headers=who.headers)


async def count_messages(db: async_sessionmaker[AsyncSession], chat_id: str) -> int:
    async with db() as session:
        return (
            await session.scalar(
                select(func.count()).where(ChatMessage.chat_id == ids.decode(ids.Prefix.CHAT, chat_id))
            )
            or 0
        )


@pytest.fixture
async def live(engine_env: dict[str, str]) -> AsyncIterator[NatsClient]:
    """A NATS connection to watch what the API publishes."""
    nc = await nats.connect(engine_env["TRIBE_NATS_URL"])
    try:
        yield nc
    finally:
        await nc.close()


# Chats


async def test_direct_chat_is_created_once_from_either_side(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    a, b = await make_account(), await make_account()
    first = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [b.id]}, headers=a.headers)
    assert first.status_code == 201
    body = first.json()
    assert body["id"].startswith("chat_")
    assert body["type"] == "direct"
    assert {p["user_id"] for p in body["participants"]} == {a.id, b.id}
    again = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [b.id]}, headers=a.headers)
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    reverse = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [a.id]}, headers=b.headers)
    assert reverse.status_code == 200
    assert reverse.json()["id"] == body["id"]


async def test_concurrent_direct_chat_creation_makes_one_chat(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    a, b = await make_account(), await make_account()
    responses = await asyncio.gather(
        *[
            client.post("/v1/chats", json={"type": "direct", "participant_ids": [other.id]}, headers=me.headers)
            for me, other in [(a, b), (b, a)] * 4
        ]
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "direct", "participant_ids": ["usr_nope"]}, "participant_ids"),
        ({"type": "direct", "participant_ids": []}, "participant_ids"),
        ({"type": "group", "participant_ids": ["SELF"]}, "title"),
        ({"type": "club", "participant_ids": ["SELF"]}, "type"),
        ({"type": "direct", "participant_ids": ["SELF"]}, "participant_ids"),
        ({"type": "direct", "participant_ids": [ids.encode(ids.Prefix.USER, ids.uuid7())]}, "participant_ids"),
        ({"type": "direct", "participant_ids": ["OTHER"], "title": "x"}, "title"),
        ({"type": "direct", "participant_ids": ["OTHER"], "context_id": "x"}, "context_id"),
    ],
    ids=[
        "malformed",
        "empty",
        "group-no-title",
        "club-type",
        "self-only",
        "unknown-user",
        "direct-title",
        "unknown-field",
    ],
)
async def test_bad_chat_creation_is_422_and_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, body: dict[str, object], field: str
) -> None:
    me, other = await make_account(), await make_account()
    swap = {"SELF": me.id, "OTHER": other.id}
    body = {**body, "participant_ids": [swap.get(v, v) for v in body["participant_ids"]]}  # type: ignore[attr-defined]
    response = await client.post("/v1/chats", json=body, headers=me.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {e["field"] for e in response.json()["errors"]}
    listed = await client.get("/v1/chats", headers=me.headers)
    assert listed.json()["items"] == []


async def test_group_chat_members_roles_and_visibility(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    admin, member, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member, title="  Trail crew ")
    view = (await client.get(f"/v1/chats/{chat_id}", headers=member.headers)).json()
    assert view["title"] == "Trail crew"
    assert view["role"] == "member"
    assert {p["user_id"]: p["role"] for p in view["participants"]} == {admin.id: "admin", member.id: "member"}
    for path in (f"/v1/chats/{chat_id}", f"/v1/chats/{chat_id}/messages"):
        hidden = await client.get(path, headers=outsider.headers)
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "chat_not_found"
    assert (await client.get("/v1/chats/chat_garbage", headers=member.headers)).status_code == 404
    assert (await client.get(f"/v1/chats/{admin.id}", headers=member.headers)).status_code == 404


async def test_adding_and_removing_members(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    admin, member, newcomer = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member)
    denied = await client.post(
        f"/v1/chats/{chat_id}/participants", json={"user_ids": [newcomer.id]}, headers=member.headers
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "not_chat_admin"
    added = await client.post(
        f"/v1/chats/{chat_id}/participants", json={"user_ids": [newcomer.id]}, headers=admin.headers
    )
    assert added.status_code == 200
    assert newcomer.id in {p["user_id"] for p in added.json()["participants"]}
    # Adding again is harmless.
    again = await client.post(
        f"/v1/chats/{chat_id}/participants", json={"user_ids": [newcomer.id]}, headers=admin.headers
    )
    assert len(again.json()["participants"]) == 3
    bad = await client.post(f"/v1/chats/{chat_id}/participants", json={"user_ids": ["usr_x"]}, headers=admin.headers)
    assert bad.status_code == 422

    kick = await client.delete(f"/v1/chats/{chat_id}/participants/{newcomer.id}", headers=member.headers)
    assert kick.status_code == 403
    kick = await client.delete(f"/v1/chats/{chat_id}/participants/{newcomer.id}", headers=admin.headers)
    assert kick.status_code == 204
    assert (await client.get(f"/v1/chats/{chat_id}", headers=newcomer.headers)).status_code == 404
    assert (await send(client, newcomer, chat_id, "let me back")).status_code == 404
    gone = await client.delete(f"/v1/chats/{chat_id}/participants/{newcomer.id}", headers=admin.headers)
    assert gone.status_code == 404

    # The last admin leaving hands the role to the longest-standing member.
    leave = await client.delete(f"/v1/chats/{chat_id}/participants/{admin.id}", headers=admin.headers)
    assert leave.status_code == 204
    view = (await client.get(f"/v1/chats/{chat_id}", headers=member.headers)).json()
    assert view["role"] == "admin"
    assert [p["user_id"] for p in view["participants"]] == [member.id]


async def test_direct_chats_have_fixed_members(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b, c = await make_account(), await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    added = await client.post(f"/v1/chats/{chat_id}/participants", json={"user_ids": [c.id]}, headers=a.headers)
    assert added.status_code == 409
    assert added.json()["code"] == "not_a_group_chat"
    left = await client.delete(f"/v1/chats/{chat_id}/participants/{a.id}", headers=a.headers)
    assert left.status_code == 409


async def test_chat_list_is_ordered_by_activity_with_unread_and_last_message(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    me = await make_account()
    others = [await make_account() for _ in range(3)]
    chats = [await direct_chat(client, me, other) for other in others]
    # Activity: chat 0 gets the newest message, chat 2 the one before.
    assert (await send(client, others[2], chats[2], "older")).status_code == 202
    assert (await send(client, others[0], chats[0], "one")).status_code == 202
    assert (await send(client, others[0], chats[0], "two")).status_code == 202
    first = await client.get("/v1/chats", params={"limit": 2}, headers=me.headers)
    assert first.status_code == 200
    page = first.json()
    assert [c["id"] for c in page["items"]] == [chats[0], chats[2]]
    assert page["items"][0]["unread_count"] == 2
    assert page["items"][0]["last_message"]["content"] == {"type": "text", "text": "two", "attachments": []}
    assert page["items"][1]["unread_count"] == 1
    rest = (await client.get("/v1/chats", params={"cursor": page["next_cursor"]}, headers=me.headers)).json()
    assert [c["id"] for c in rest["items"]] == [chats[1]]
    assert rest["items"][0]["last_message"] is None
    assert rest["next_cursor"] is None
    # A sender has nothing unread in their own chat.
    mine = (await client.get(f"/v1/chats/{chats[0]}", headers=others[0].headers)).json()
    assert mine["unread_count"] == 0
    bad = await client.get("/v1/chats", params={"cursor": "nonsense"}, headers=me.headers)
    assert bad.status_code == 422


# Messages


async def test_send_is_accepted_with_ids_and_appears_in_history(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    payload = {
        "client_message_id": "tmp-123",
        "sender_id": a.id,
        "content": {"type": "text", "text": "Ready for tonight?", "attachments": [{"media_id": "med_" + "0" * 26}]},
        "mentions": [b.id],
    }
    response = await client.post(f"/v1/chats/{chat_id}/messages", json=payload, headers=a.headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["message_id"].startswith("msg_")
    assert accepted["ack_token"].startswith("ack_")
    assert accepted["seq"] == 1
    reply = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": "tmp-124", "content": text("yes!"), "reply_to": accepted["message_id"]},
        headers=b.headers,
    )
    assert reply.status_code == 202
    history = (await client.get(f"/v1/chats/{chat_id}/messages", headers=b.headers)).json()
    newest, oldest = history["messages"]
    assert history["paging"] == {"next_before": None}
    assert newest["seq"] == 2
    assert newest["reply_to"] == accepted["message_id"]
    assert oldest["id"] == accepted["message_id"]
    assert oldest["sender_id"] == a.id
    assert oldest["content"]["text"] == "Ready for tonight?"
    assert oldest["content"]["attachments"] == [{"media_id": "med_" + "0" * 26}]
    assert oldest["mentions"] == [b.id]
    assert oldest["deleted"] is False
    assert oldest["edited_at"] is None
    # b replied, so b has read a's message; a has not read b's yet.
    assert oldest["delivery"] == {"status": "read", "read_by": [b.id]}
    assert newest["delivery"] == {"status": "sent", "read_by": []}


async def test_resend_returns_the_original_and_publishes_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    live: NatsClient,
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    seen: list[ChatLiveEvent] = []

    async def collect(msg: Msg) -> None:
        seen.append(decode_live_event(msg.data))

    await live.subscribe(f"chat.{chat_id}", cb=collect)
    await live.flush()
    first = await send(client, a, chat_id, "hello", "cmid-1")
    resent = await asyncio.gather(*[send(client, a, chat_id, "hello", "cmid-1") for _ in range(5)])
    assert {r.json()["message_id"] for r in resent} == {first.json()["message_id"]}
    assert {r.json()["ack_token"] for r in resent} == {first.json()["ack_token"]}
    assert await count_messages(db, chat_id) == 1
    # A later message proves earlier publishes have arrived.
    await send(client, a, chat_id, "after", "cmid-2")
    async with asyncio.timeout(5):
        while len(seen) < 2:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    posted = [e for e in seen if isinstance(e, ChatMessagePosted)]
    assert [e.message.client_message_id for e in posted] == ["cmid-1", "cmid-2"]


async def test_concurrent_sends_get_gap_free_seqs(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_account()
    members = [await make_account() for _ in range(3)]
    chat_id = await group_chat(client, admin, *members)
    everyone = [admin, *members]
    responses = await asyncio.gather(*[send(client, everyone[i % 4], chat_id, f"m{i}") for i in range(24)])
    assert all(r.status_code == 202 for r in responses)
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 25))
    assert await count_messages(db, chat_id) == 24


async def waiting_on_locks(db: async_sessionmaker[AsyncSession]) -> int:
    """How many chat sends wait for a row lock right now."""
    async with db() as session:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%allocated%'"
        return await session.scalar(sql(query)) or 0


async def test_racing_first_sends_of_one_client_id_store_one_message_and_leave_no_seq_gap(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await group_chat(client, a, b)
    # Hold the chat's row lock until every copy waits behind it: all of them then start before the first
    # commits, so the losers pass the resend check, allocate a seq and meet the unique index.
    async with db.begin() as session:
        await session.execute(
            sql("SELECT 1 FROM chats WHERE id = :id FOR UPDATE"), {"id": ids.decode(ids.Prefix.CHAT, chat_id)}
        )
        copies = [asyncio.create_task(send(client, a, chat_id, "once", "race-1")) for _ in range(6)]
        async with asyncio.timeout(10):
            while await waiting_on_locks(db) < len(copies):
                await asyncio.sleep(0.02)
    raced = await asyncio.gather(*copies)
    assert all(r.status_code == 202 for r in raced), [r.text for r in raced]
    assert len({r.json()["message_id"] for r in raced}) == 1
    assert {r.json()["seq"] for r in raced} == {1}
    assert await count_messages(db, chat_id) == 1
    # The losers' allocations were rolled back with them: the next message is seq 2.
    assert (await send(client, b, chat_id, "next")).json()["seq"] == 2


async def test_same_client_id_with_other_content_is_422(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    assert (await send(client, a, chat_id, "first", "dup")).status_code == 202
    other = await send(client, a, chat_id, "second", "dup")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_idempotency_key_header_stands_in_for_client_message_id(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    headers = {**a.headers, "Idempotency-Key": "key-1"}
    responses = [
        await client.post(f"/v1/chats/{chat_id}/messages", json={"content": text("hi")}, headers=headers)
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [202, 202]
    assert responses[0].json()["message_id"] == responses[1].json()["message_id"]
    assert responses[0].json()["client_message_id"] == "key-1"
    clash = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": "other", "content": text("hi")},
        headers=headers,
    )
    assert clash.status_code == 422
    missing = await client.post(f"/v1/chats/{chat_id}/messages", json={"content": text("hi")}, headers=a.headers)
    assert missing.status_code == 422
    assert await count_messages(db, chat_id) == 1


async def test_sending_as_someone_else_is_403_and_outsiders_get_404(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    spoof = await client.post(
        f"/v1/chats/{chat_id}/messages",
        json={"client_message_id": "x", "sender_id": b.id, "content": text("it's b")},
        headers=a.headers,
    )
    assert spoof.status_code == 403
    assert spoof.json()["code"] == "sender_mismatch"
    intruder = await send(client, outsider, chat_id, "hi")
    assert intruder.status_code == 404
    unknown = await send(client, a, ids.encode(ids.Prefix.CHAT, ids.uuid7()), "hi")
    assert unknown.status_code == 404
    assert await count_messages(db, chat_id) == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_message_id": "x", "content": {"type": "text", "text": "   "}}, "content.text"),
        ({"client_message_id": "x", "content": {"type": "text", "text": "x" * 4001}}, "content.text"),
        ({"client_message_id": "x", "content": {"type": "image", "url": "x"}}, "content"),
        ({"client_message_id": "", "content": {"type": "text", "text": "x"}}, "client_message_id"),
        (
            {
                "client_message_id": "x",
                "content": {"type": "text", "text": "x", "attachments": [{"media_id": "evt_1"}]},
            },
            "content.attachments[0].media_id",
        ),
        ({"client_message_id": "x", "content": {"type": "text", "text": "x"}, "reply_to": "msg_bad"}, "reply_to"),
        (
            {
                "client_message_id": "x",
                "content": {"type": "text", "text": "x"},
                "reply_to": ids.encode(ids.Prefix.MESSAGE, ids.uuid7()),
            },
            "reply_to",
        ),
        ({"client_message_id": "x", "content": {"type": "text", "text": "x"}, "mentions": ["nobody"]}, "mentions"),
        ({"client_message_id": "x", "content": {"type": "text", "text": "x"}, "seq": 7}, "seq"),
    ],
    ids=[
        "blank",
        "too-long",
        "unknown-type",
        "empty-client-id",
        "foreign-media",
        "bad-reply",
        "unknown-reply",
        "bad-mention",
        "seq-field",
    ],
)
async def test_bad_messages_are_422_and_not_stored(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    payload: dict[str, object],
    field: str,
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    response = await client.post(f"/v1/chats/{chat_id}/messages", json=payload, headers=a.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert any(f.startswith(field) for f in fields), fields
    assert await count_messages(db, chat_id) == 0
    view = (await client.get(f"/v1/chats/{chat_id}", headers=a.headers)).json()
    assert view["last_seq"] == 0


async def test_history_pages_backwards_by_seq(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    for i in range(5):
        assert (await send(client, a, chat_id, f"m{i + 1}")).status_code == 202
    first = (await client.get(f"/v1/chats/{chat_id}/messages", params={"limit": 2}, headers=b.headers)).json()
    assert [m["seq"] for m in first["messages"]] == [5, 4]
    assert first["paging"]["next_before"] == 4
    second = (
        await client.get(f"/v1/chats/{chat_id}/messages", params={"limit": 2, "before": 4}, headers=b.headers)
    ).json()
    assert [m["seq"] for m in second["messages"]] == [3, 2]
    last = (
        await client.get(f"/v1/chats/{chat_id}/messages", params={"limit": 2, "before": 2}, headers=b.headers)
    ).json()
    assert [m["seq"] for m in last["messages"]] == [1]
    assert last["paging"]["next_before"] is None
    for params in ({"limit": 0}, {"before": 0}):
        assert (await client.get(f"/v1/chats/{chat_id}/messages", params=params, headers=b.headers)).status_code == 422


async def test_edit_within_window_by_sender_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    message_id = (await send(client, a, chat_id, "helo")).json()["message_id"]
    path = f"/v1/chats/{chat_id}/messages/{message_id}"
    edited = await client.patch(path, json={"content": text("hello")}, headers=a.headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["content"]["text"] == "hello"
    assert edited.json()["edited_at"] is not None
    assert (await client.patch(path, json={"content": text("hijack")}, headers=b.headers)).status_code == 403
    assert (await client.patch(path, json={"content": text("  ")}, headers=a.headers)).status_code == 422
    assert (await client.patch(path, json={"text": "x"}, headers=a.headers)).status_code == 422
    history = (await client.get(f"/v1/chats/{chat_id}/messages", headers=b.headers)).json()
    assert history["messages"][0]["content"]["text"] == "hello"
    # Sixteen minutes later the window has closed.
    async with db.begin() as session:
        await session.execute(
            update(ChatMessage)
            .where(ChatMessage.id == ids.decode(ids.Prefix.MESSAGE, message_id))
            .values(sent_at=ChatMessage.sent_at - timedelta(minutes=16))
        )
    late = await client.patch(path, json={"content": text("too late")}, headers=a.headers)
    assert late.status_code == 403
    assert late.json()["code"] == "edit_window_closed"


async def test_delete_leaves_a_tombstone_everywhere(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    admin, member, other = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, admin, member, other)
    mine = (await send(client, member, chat_id, "oops")).json()["message_id"]
    theirs = (await send(client, other, chat_id, "rude")).json()["message_id"]
    denied = await client.delete(f"/v1/chats/{chat_id}/messages/{theirs}", headers=member.headers)
    assert denied.status_code == 403
    removed = await client.delete(f"/v1/chats/{chat_id}/messages/{mine}", headers=member.headers)
    assert removed.status_code == 200
    assert removed.json() == {"status": "removed", "moderator_id": member.id, "message_id": mine}
    by_admin = await client.delete(f"/v1/chats/{chat_id}/messages/{theirs}", headers=admin.headers)
    assert by_admin.json()["moderator_id"] == admin.id
    again = await client.delete(f"/v1/chats/{chat_id}/messages/{theirs}", headers=admin.headers)
    assert again.status_code == 200
    history = (await client.get(f"/v1/chats/{chat_id}/messages", headers=other.headers)).json()
    for message in history["messages"]:
        assert message["deleted"] is True
        assert message["content"] is None
    view = (await client.get(f"/v1/chats/{chat_id}", headers=admin.headers)).json()
    assert view["last_message"]["deleted"] is True
    assert view["last_message"]["content"] is None
    assert view["unread_count"] == 0
    edit = await client.patch(
        f"/v1/chats/{chat_id}/messages/{mine}", json={"content": text("x")}, headers=member.headers
    )
    assert edit.status_code == 409
    unknown = ids.encode(ids.Prefix.MESSAGE, ids.uuid7())
    assert (await client.delete(f"/v1/chats/{chat_id}/messages/{unknown}", headers=admin.headers)).status_code == 404


async def test_message_of_another_chat_is_404(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b, c = await make_account(), await make_account(), await make_account()
    ours = await direct_chat(client, a, b)
    theirs = await direct_chat(client, b, c)
    foreign = (await send(client, c, theirs, "private")).json()["message_id"]
    assert (await client.delete(f"/v1/chats/{ours}/messages/{foreign}", headers=a.headers)).status_code == 404
    assert (await client.delete(f"/v1/chats/{theirs}/messages/{foreign}", headers=a.headers)).status_code == 404
    read = await client.post(f"/v1/chats/{ours}/read", json={"message_id": foreign}, headers=a.headers)
    assert read.status_code == 404


# Typing and read state


async def test_typing_is_acknowledged_with_its_lifetime(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    ok = await client.post(f"/v1/chats/{chat_id}/typing", json={"user_id": a.id, "is_typing": True}, headers=a.headers)
    assert ok.status_code == 200
    assert ok.json() == {"expires_in_ms": 5000}
    stop = await client.post(f"/v1/chats/{chat_id}/typing", json={"is_typing": False}, headers=a.headers)
    assert stop.status_code == 200
    spoof = await client.post(f"/v1/chats/{chat_id}/typing", json={"user_id": b.id}, headers=a.headers)
    assert spoof.status_code == 403
    assert (await client.post(f"/v1/chats/{chat_id}/typing", json={}, headers=outsider.headers)).status_code == 404


async def test_read_position_only_moves_forward(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    sent = [(await send(client, a, chat_id, f"m{i}")).json()["message_id"] for i in range(3)]
    assert (await client.get(f"/v1/chats/{chat_id}", headers=b.headers)).json()["unread_count"] == 3
    read = await client.post(f"/v1/chats/{chat_id}/read", json={"message_id": sent[1]}, headers=b.headers)
    assert read.status_code == 200
    assert read.json() == {"chat_id": chat_id, "user_id": b.id, "message_id": sent[1], "seq": 2}
    back = await client.post(f"/v1/chats/{chat_id}/read", json={"message_id": sent[0]}, headers=b.headers)
    assert back.json()["seq"] == 2
    assert back.json()["message_id"] == sent[1]
    assert (await client.get(f"/v1/chats/{chat_id}", headers=b.headers)).json()["unread_count"] == 1
    bad = await client.post(f"/v1/chats/{chat_id}/read", json={"message_id": "nope"}, headers=b.headers)
    assert bad.status_code == 422
    history = (await client.get(f"/v1/chats/{chat_id}/messages", headers=a.headers)).json()
    assert [m["delivery"]["read_by"] for m in history["messages"]] == [[], [b.id], [b.id]]


async def test_each_send_writes_one_outbox_row_that_the_api_marks_published(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await direct_chat(client, a, b)
    message_id = (await send(client, a, chat_id, "tracked", "tracked")).json()["message_id"]
    await send(client, a, chat_id, "tracked", "tracked")
    # live_published_at: the API published it itself; the relay (if running) then only queues its jobs.
    query = select(OutboxRow.live_published_at).where(
        OutboxRow.event_type == "chat.message.new", OutboxRow.payload["message"]["id"].astext == message_id
    )
    async with asyncio.timeout(10):
        while True:
            async with db() as session:
                stamps = (await session.scalars(query)).all()
            assert len(stamps) == 1
            if stamps[0] is not None:
                break
            await asyncio.sleep(0.05)


async def test_a_block_closes_direct_chats_both_ways(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob, carol = await make_account(), await make_account(), await make_account()
    chat_id = await direct_chat(client, alice, bob)
    group_id = await group_chat(client, carol, alice, bob)
    assert (await send(client, alice, chat_id, "hi")).status_code == 202
    assert (await client.post(f"/v1/users/{alice.id}/block", headers=bob.headers)).status_code == 201

    for sender in (alice, bob):
        refused = await send(client, sender, chat_id, "still there?")
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "user_blocked"
    assert await count_messages(db, chat_id) == 1
    reopen = await client.post("/v1/chats", json={"type": "direct", "participant_ids": [bob.id]}, headers=alice.headers)
    assert reopen.status_code == 404
    # Group chats are not direct conversations: both still talk there.
    assert (await send(client, alice, group_id, "group hello")).status_code == 202

    assert (await client.delete(f"/v1/users/{alice.id}/block", headers=bob.headers)).status_code == 204
    assert (await send(client, alice, chat_id, "friends again")).status_code == 202
