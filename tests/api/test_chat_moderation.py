"""Chat moderation through the real API: blocklists, reports, case review and the audit log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.moderation.models import MessageCase, ModerationAuditEntry
from tests.api.club_support import add_member, create_club, join
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, grant_role, make_organizer, rsvp
from tests.api.test_chat import count_messages, group_chat, send
from tests.api.test_chat_rooms import room


async def moderator(make_account: MakeAccount, db: async_sessionmaker[AsyncSession]) -> Account:
    """A platform moderator."""
    account = await make_account()
    await grant_role(db, account, "moderator")
    return account


async def add_global(client: httpx.AsyncClient, who: Account, term: str, mode: str) -> httpx.Response:
    return await client.post("/v1/moderation/blocklist", json={"term": term, "mode": mode}, headers=who.headers)


async def audit_rows(db: async_sessionmaker[AsyncSession], target: uuid.UUID) -> list[str]:
    async with db() as session:
        rows = await session.scalars(
            select(ModerationAuditEntry.action)
            .where(ModerationAuditEntry.target_id == target)
            .order_by(ModerationAuditEntry.id)
        )
        return list(rows)


async def open_cases(db: async_sessionmaker[AsyncSession], message_id: str) -> int:
    async with db() as session:
        return (
            await session.scalar(
                select(func.count()).where(
                    MessageCase.message_id == ids.decode(ids.Prefix.MESSAGE, message_id), MessageCase.status == "open"
                )
            )
            or 0
        )


def unique_term() -> str:
    return f"zorblax{uuid.uuid4().hex[:8]}"


# Blocklists


async def test_global_blocklist_is_for_platform_moderators(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod, user = await moderator(make_account, db), await make_account()
    term = unique_term()
    refused = await add_global(client, user, term, "reject")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "not_moderator"
    assert (await client.get("/v1/moderation/blocklist", headers=user.headers)).status_code == 403

    for bad in ({"term": "", "mode": "reject"}, {"term": "x", "mode": "shout"}, {"term": "   ", "mode": "flag"}):
        response = await client.post("/v1/moderation/blocklist", json=bad, headers=mod.headers)
        assert response.status_code in (400, 422), response.text

    added = await add_global(client, mod, f"  {term.upper()} ", "reject")
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["id"].startswith("blt_")
    assert body["term"] == term
    assert body["club_id"] is None
    again = await add_global(client, mod, term, "flag")
    assert again.status_code == 409
    assert again.json()["code"] == "blocklist_term_exists"

    listed = await client.get("/v1/moderation/blocklist", headers=mod.headers)
    assert body["id"] in [t["id"] for t in listed.json()["items"]]
    term_id = ids.decode(ids.Prefix.BLOCKLIST_TERM, body["id"])
    assert (await client.delete(f"/v1/moderation/blocklist/{body['id']}", headers=user.headers)).status_code == 403
    assert (await client.delete(f"/v1/moderation/blocklist/{body['id']}", headers=mod.headers)).status_code == 204
    missing = await client.delete(f"/v1/moderation/blocklist/{body['id']}", headers=mod.headers)
    assert missing.status_code == 404
    assert await audit_rows(db, term_id) == ["blocklist.add", "blocklist.delete"]


async def test_concurrent_adds_of_one_term_store_it_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod = await moderator(make_account, db)
    term = unique_term()
    results = await asyncio.gather(*(add_global(client, mod, term, "reject") for _ in range(5)))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]


async def test_reject_terms_refuse_the_message_and_store_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod, a, b = await moderator(make_account, db), await make_account(), await make_account()
    term = unique_term()
    assert (await add_global(client, mod, term, "reject")).status_code == 201
    chat_id = await group_chat(client, a, b)
    blocked = await send(client, a, chat_id, f"you are a {term.upper()}!")
    assert blocked.status_code == 422
    assert blocked.json()["code"] == "message_blocked"
    assert await count_messages(db, chat_id) == 0
    # Whole words only: the term inside a longer word passes.
    assert (await send(client, a, chat_id, f"{term}ish weather")).status_code == 202
    # Edits are screened too.
    sent = await send(client, a, chat_id, "clean")
    edited = await client.patch(
        f"/v1/chats/{chat_id}/messages/{sent.json()['message_id']}",
        json={"content": {"type": "text", "text": f"now {term}"}},
        headers=a.headers,
    )
    assert edited.status_code == 422
    assert edited.json()["code"] == "message_blocked"


async def test_flagged_messages_are_hidden_until_approved(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod, a, b = await moderator(make_account, db), await make_account(), await make_account()
    term = unique_term()
    assert (await add_global(client, mod, term, "flag")).status_code == 201
    chat_id = await group_chat(client, a, b)
    sent = await send(client, a, chat_id, f"hello {term}")
    assert sent.status_code == 202
    message_id = sent.json()["message_id"]

    mine = (await client.get(f"/v1/chats/{chat_id}/messages", headers=a.headers)).json()["messages"]
    assert [(m["id"], m["moderation_status"]) for m in mine] == [(message_id, "flagged")]
    theirs = await client.get(f"/v1/chats/{chat_id}/messages", headers=b.headers)
    assert theirs.json()["messages"] == []
    listing = await client.get(f"/v1/chats/{chat_id}", headers=b.headers)
    assert listing.json()["last_message"] is None
    assert listing.json()["unread_count"] == 0
    # Others cannot report what they cannot see.
    hidden = await client.post(
        f"/v1/chats/{chat_id}/messages/{message_id}/report", json={"reason": "?"}, headers=b.headers
    )
    assert hidden.status_code == 404

    cases = await client.get("/v1/moderation/cases", headers=mod.headers)
    (case,) = [c for c in cases.json()["items"] if c["message_id"] == message_id]
    assert case["id"].startswith("case_")
    assert case["reporter_id"] is None
    assert case["reason"] == f"blocklist: {term}"
    dismissed = await client.post(
        f"/v1/moderation/cases/{case['id']}/resolve", json={"action": "dismiss"}, headers=mod.headers
    )
    assert dismissed.status_code == 409
    assert dismissed.json()["code"] == "message_awaiting_review"

    approved = await client.post(
        f"/v1/moderation/cases/{case['id']}/resolve", json={"action": "approve", "note": "fine"}, headers=mod.headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "resolved"
    assert approved.json()["resolution"] == "approve"
    assert approved.json()["message"]["moderation_status"] == "visible"
    shown = (await client.get(f"/v1/chats/{chat_id}/messages", headers=b.headers)).json()["messages"]
    assert [m["id"] for m in shown] == [message_id]
    assert await audit_rows(db, ids.decode(ids.Prefix.MESSAGE, message_id)) == ["case.approve"]


async def test_club_blocklist_applies_in_the_club_room_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, club_mod, member, outsider = (
        await make_account(),
        await make_account(),
        await make_account(),
        await make_account(),
    )
    club = await create_club(client, owner)
    await add_member(client, club, owner, club_mod, role="moderator")
    await join(client, club["id"], member)
    path = f"/v1/clubs/{club['id']}/blocklist"
    term = unique_term()

    not_staff = await client.post(path, json={"term": term, "mode": "reject"}, headers=member.headers)
    assert not_staff.status_code == 403
    stranger = await client.post(path, json={"term": term, "mode": "reject"}, headers=outsider.headers)
    assert stranger.status_code == 403
    secret = await create_club(client, owner, privacy_level="secret", kind="circle")
    hidden = await client.get(f"/v1/clubs/{secret['id']}/blocklist", headers=outsider.headers)
    assert hidden.status_code == 404
    bad = await client.post(path, json={"term": "x" * 101, "mode": "reject"}, headers=club_mod.headers)
    assert bad.status_code in (400, 422)

    added = await client.post(path, json={"term": term, "mode": "reject"}, headers=club_mod.headers)
    assert added.status_code == 201, added.text
    assert added.json()["club_id"] == club["id"]
    assert [t["term"] for t in (await client.get(path, headers=owner.headers)).json()["items"]] == [term]
    # Another club's id with this term's id: not found there.
    other = await create_club(client, owner)
    wrong = await client.delete(f"/v1/clubs/{other['id']}/blocklist/{added.json()['id']}", headers=owner.headers)
    assert wrong.status_code == 404

    chat = await room(client, member, club_id=club["id"])
    refused = await send(client, member, chat["id"], f"a {term}")
    assert refused.status_code == 422
    assert refused.json()["code"] == "message_blocked"
    elsewhere = await group_chat(client, member, outsider)
    assert (await send(client, member, elsewhere, f"a {term}")).status_code == 202


# A blocklist change crosses processes by NOTIFY in milliseconds; a cache that missed it would serve the
# old terms for its whole 30 s lifetime. This bound separates the two.
PROPAGATION_S = 2.0


async def status_soon(send_once: Callable[[], Awaitable[httpx.Response]], expected: int) -> httpx.Response:
    """The first response with ``expected`` status within the propagation bound (few tries: sends are rate-limited)."""
    deadline = asyncio.get_running_loop().time() + PROPAGATION_S
    while True:
        response = await send_once()
        if response.status_code == expected or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_blocklist_changes_apply_to_the_next_message_though_terms_are_cached(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod, owner, a, b = (
        await moderator(make_account, db),
        await make_account(),
        await make_account(),
        await make_account(),
    )
    club = await create_club(client, owner)
    await join(client, club["id"], a)
    club_room = await room(client, a, club_id=club["id"])
    group = await group_chat(client, a, b)
    term, club_term = unique_term(), unique_term()
    # Both scopes' terms are now cached in the API process.
    assert (await send(client, a, group, f"{term} {club_term}")).status_code == 202
    assert (await send(client, a, club_room["id"], f"{term} {club_term}")).status_code == 202

    # Through the API: this process forgets the scope before answering.
    added = await add_global(client, mod, term, "reject")
    assert added.status_code == 201
    refused = await send(client, a, group, f"now {term}")
    assert refused.status_code == 422
    assert refused.json()["code"] == "message_blocked"
    removed = await client.delete(f"/v1/moderation/blocklist/{added.json()['id']}", headers=mod.headers)
    assert removed.status_code == 204
    assert (await send(client, a, group, f"again {term}")).status_code == 202

    # Straight in the database, as another process would: the trigger's NOTIFY reaches the API's listener.
    club_uuid = ids.decode(ids.Prefix.CLUB, club["id"])
    async with db.begin() as session:
        await session.execute(
            text("INSERT INTO blocklist_terms (id, club_id, term, mode) VALUES (:id, :club, :term, 'reject')"),
            {"id": ids.uuid7(), "club": club_uuid, "term": club_term},
        )

    async def in_room() -> httpx.Response:
        return await send(client, a, club_room["id"], f"hey {club_term}")

    blocked = await status_soon(in_room, 422)
    assert blocked.status_code == 422, blocked.text
    assert blocked.json()["code"] == "message_blocked"
    # The club's list is the club room's only.
    assert (await send(client, a, group, f"hey {club_term}")).status_code == 202
    async with db.begin() as session:
        await session.execute(
            text("DELETE FROM blocklist_terms WHERE club_id = :club AND term = :term"),
            {"club": club_uuid, "term": club_term},
        )
    assert (await status_soon(in_room, 202)).status_code == 202


# Reports and cases


async def test_reporting_a_message(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b, outsider = await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, a, b)
    message_id = (await send(client, a, chat_id, "rude words")).json()["message_id"]
    path = f"/v1/chats/{chat_id}/messages/{message_id}/report"

    assert (await client.post(path, json={"reason": ""}, headers=b.headers)).status_code in (400, 422)
    assert (await client.post(path, json={}, headers=b.headers)).status_code in (400, 422)
    assert (await client.post(path, json={"reason": "x", "extra": 1}, headers=b.headers)).status_code in (400, 422)
    assert (await client.post(path, json={"reason": "spam"}, headers=outsider.headers)).status_code == 404
    own = await client.post(path, json={"reason": "spam"}, headers=a.headers)
    assert own.status_code == 422
    assert own.json()["code"] == "cannot_report_own_message"
    assert await open_cases(db, message_id) == 0

    first = await client.post(path, json={"reason": "rude"}, headers=b.headers)
    assert first.status_code == 201, first.text
    assert first.json()["reporter_id"] == b.id
    again = await client.post(path, json={"reason": "still rude"}, headers=b.headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert await open_cases(db, message_id) == 1


async def test_concurrent_reports_open_one_case(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await make_account(), await make_account()
    chat_id = await group_chat(client, a, b)
    message_id = (await send(client, a, chat_id, "hmm")).json()["message_id"]
    path = f"/v1/chats/{chat_id}/messages/{message_id}/report"
    results = await asyncio.gather(*(client.post(path, json={"reason": "r"}, headers=b.headers) for _ in range(6)))
    assert sorted(r.status_code for r in results) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    assert await open_cases(db, message_id) == 1


async def test_removing_a_reported_message(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod = await moderator(make_account, db)
    a, b, c, user = await make_account(), await make_account(), await make_account(), await make_account()
    chat_id = await group_chat(client, a, b, c)
    message_id = (await send(client, b, chat_id, "buy my stuff")).json()["message_id"]
    path = f"/v1/chats/{chat_id}/messages/{message_id}/report"
    case_b = (await client.post(path, json={"reason": "spam"}, headers=a.headers)).json()
    case_c = (await client.post(path, json={"reason": "spam too"}, headers=c.headers)).json()

    # Not a moderator of anything here: the case does not exist for them.
    assert case_b["id"] not in [
        c["id"] for c in (await client.get("/v1/moderation/cases", headers=user.headers)).json()["items"]
    ]
    foreign = await client.post(
        f"/v1/moderation/cases/{case_b['id']}/resolve", json={"action": "remove"}, headers=user.headers
    )
    assert foreign.status_code == 404
    bad = await client.post(
        f"/v1/moderation/cases/{case_b['id']}/resolve", json={"action": "nuke"}, headers=mod.headers
    )
    assert bad.status_code in (400, 422)
    bad_status = await client.get("/v1/moderation/cases", params={"status": "weird"}, headers=mod.headers)
    assert bad_status.status_code == 422

    # The group's admin moderates their own chat.
    admin_view = await client.get("/v1/moderation/cases", headers=a.headers)
    assert {case_b["id"], case_c["id"]} <= {c["id"] for c in admin_view.json()["items"]}

    results = await asyncio.gather(
        client.post(f"/v1/moderation/cases/{case_b['id']}/resolve", json={"action": "remove"}, headers=mod.headers),
        client.post(f"/v1/moderation/cases/{case_b['id']}/resolve", json={"action": "remove"}, headers=a.headers),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    (loser,) = [r for r in results if r.status_code == 409]
    assert loser.json()["code"] == "case_already_resolved"
    # The decision settled the other report on the same message too.
    assert await open_cases(db, message_id) == 0

    history = (await client.get(f"/v1/chats/{chat_id}/messages", headers=c.headers)).json()["messages"]
    (removed,) = [m for m in history if m["id"] == message_id]
    assert removed["deleted"] is True
    assert removed["content"] is None
    assert removed["moderation_status"] == "removed"
    assert await audit_rows(db, ids.decode(ids.Prefix.MESSAGE, message_id)) == ["case.remove"]

    resolved = await client.get("/v1/moderation/cases", params={"status": "resolved"}, headers=mod.headers)
    assert {case_b["id"], case_c["id"]} <= {c["id"] for c in resolved.json()["items"]}


async def test_club_moderators_delete_messages_in_the_club_room_with_an_audit_row(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, club_mod, member = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, club_mod, role="moderator")
    await join(client, club["id"], member)
    chat = await room(client, member, club_id=club["id"])
    message_id = (await send(client, member, chat["id"], "off topic")).json()["message_id"]
    refused = await client.delete(f"/v1/chats/{chat['id']}/messages/{message_id}", headers=member.headers)
    assert refused.status_code == 200  # their own message
    other = (await send(client, owner, chat["id"], "pinned")).json()["message_id"]
    denied = await client.delete(f"/v1/chats/{chat['id']}/messages/{other}", headers=member.headers)
    assert denied.status_code == 403
    target = (await send(client, member, chat["id"], "again off topic")).json()["message_id"]
    removed = await client.delete(f"/v1/chats/{chat['id']}/messages/{target}", headers=club_mod.headers)
    assert removed.status_code == 200
    assert removed.json()["moderator_id"] == club_mod.id
    assert await audit_rows(db, ids.decode(ids.Prefix.MESSAGE, target)) == ["message.remove"]
    # A sender deleting their own message is not a moderator action.
    assert await audit_rows(db, ids.decode(ids.Prefix.MESSAGE, message_id)) == []


async def test_the_organizer_deletes_messages_in_the_event_room_with_an_audit_row(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    guest, other_guest = await make_account(), await make_account()
    event_id = await create_event(client, organizer)
    await rsvp(client, event_id, guest)
    await rsvp(client, event_id, other_guest)
    chat = await room(client, guest, event_id=event_id)
    pinned = (await send(client, organizer, chat["id"], "Meet at the trailhead")).json()["message_id"]
    # Guests moderate nothing: not the organizer's message, not another guest's.
    denied = await client.delete(f"/v1/chats/{chat['id']}/messages/{pinned}", headers=guest.headers)
    assert denied.status_code == 403
    theirs = (await send(client, other_guest, chat["id"], "selling tickets, dm me")).json()["message_id"]
    assert (await client.delete(f"/v1/chats/{chat['id']}/messages/{theirs}", headers=guest.headers)).status_code == 403

    removed = await client.delete(f"/v1/chats/{chat['id']}/messages/{theirs}", headers=organizer.headers)
    assert removed.status_code == 200, removed.text
    assert removed.json()["moderator_id"] == organizer.id
    assert await audit_rows(db, ids.decode(ids.Prefix.MESSAGE, theirs)) == ["message.remove"]
    history = (await client.get(f"/v1/chats/{chat['id']}/messages", headers=guest.headers)).json()["messages"]
    assert [(m["id"], m["deleted"], m["content"]) for m in history if m["id"] == theirs] == [(theirs, True, None)]


async def test_the_audit_log_is_append_only(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    mod = await moderator(make_account, db)
    assert (await add_global(client, mod, unique_term(), "flag")).status_code == 201
    for statement in ("UPDATE moderation_audit_log SET note = 'x'", "DELETE FROM moderation_audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.begin() as session:
                await session.execute(text(statement))
