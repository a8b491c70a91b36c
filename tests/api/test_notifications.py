"""``/v1/notifications`` and ``/v1/devices`` through real HTTP (notifications arranged with the service verb)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.notifications.models import Device, NotificationPreference
from shared.domain.notifications.services import UnsubscribeTokens, notify
from tests.api.conftest import Account, MakeAccount
from tests.conftest import JWT_SECRET

Sessions = async_sessionmaker[AsyncSession]


async def arrange(db: Sessions, account: Account, count: int, type_: str = "friend_request") -> list[str]:
    """Notifications for ``account``, oldest first, as a feature would create them."""
    created = []
    async with db.begin() as session:
        for i in range(count):
            notification_id = await notify(
                session, ids.decode(ids.Prefix.USER, account.id), type_, {"sender_name": f"S{i}"}
            )
            assert notification_id is not None
            created.append(ids.encode(ids.Prefix.NOTIFICATION, notification_id))
    return created


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    """A problem+json answer with ``status`` (and ``code``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    if code is not None:
        assert problem["code"] == code
    return problem


async def test_list_read_and_counts(client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions) -> None:
    me = await make_account()
    created = await arrange(db, me, 5)

    count = await client.get("/v1/notifications/unread-count", headers=me.headers)
    assert count.json() == {"count": 5}
    first = await client.get("/v1/notifications", params={"limit": 3}, headers=me.headers)
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["items"]] == created[::-1][:3]
    item = page["items"][0]
    assert set(item) == {"id", "type", "title", "body", "payload", "count", "created_at", "read_at"}
    assert (item["type"], item["title"], item["payload"]) == (
        "friend_request",
        "S4 wants to connect",
        {"sender_name": "S4"},
    )
    rest = await client.get("/v1/notifications", params={"limit": 3, "cursor": page["next_cursor"]}, headers=me.headers)
    assert [i["id"] for i in rest.json()["items"]] == created[::-1][3:]
    assert rest.json()["next_cursor"] is None

    read = await client.post(f"/v1/notifications/{created[0]}/read", headers=me.headers)
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    again = await client.post(f"/v1/notifications/{created[0]}/read", headers=me.headers)
    assert again.json()["read_at"] == read.json()["read_at"]
    unread = await client.get("/v1/notifications", params={"unread_only": "true"}, headers=me.headers)
    assert [i["id"] for i in unread.json()["items"]] == created[::-1][:4]

    everything = await client.post("/v1/notifications/read-all", headers=me.headers)
    assert everything.json() == {"updated": 4}
    assert (await client.get("/v1/notifications/unread-count", headers=me.headers)).json() == {"count": 0}


async def test_another_users_notification_is_not_found(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    owner, other = await make_account(), await make_account()
    [theirs] = await arrange(db, owner, 1)

    assert_problem(await client.post(f"/v1/notifications/{theirs}/read", headers=other.headers), 404)
    assert (await client.get("/v1/notifications", headers=other.headers)).json() == {"items": [], "next_cursor": None}
    assert_problem(await client.post(f"/v1/notifications/{other.id}/read", headers=other.headers), 404)
    assert_problem(await client.post("/v1/notifications/ntf_nonsense/read", headers=other.headers), 404)
    read_all = await client.post("/v1/notifications/read-all", headers=other.headers)
    assert read_all.json() == {"updated": 0}
    assert (await client.get("/v1/notifications/unread-count", headers=owner.headers)).json() == {"count": 1}


async def test_bad_list_input(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()
    assert_problem(
        await client.get("/v1/notifications", params={"cursor": "garbage"}, headers=me.headers), 422, "invalid_cursor"
    )
    assert_problem(await client.get("/v1/notifications", params={"limit": 0}, headers=me.headers), 422)
    assert_problem(await client.get("/v1/notifications"), 401)


async def test_preferences_defaults_and_updates(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()

    defaults = (await client.get("/v1/notifications/preferences", headers=me.headers)).json()
    assert defaults["quiet_hours"] is None
    assert defaults["daily_digest"] is False
    assert defaults["types"]["rsvp_confirmed"] == {"in_app": True, "push": True, "email": True}
    assert defaults["types"]["chat_message"] == {"in_app": True, "push": True, "email": False}
    expected_types = {
        "rsvp_confirmed", "waitlist_promoted", "rsvp_approved", "event_reminder", "event_cancelled", "event_updated",
        "chat_message", "streak_reminder", "badge_earned", "club_join_approved", "friend_request", "premium_offer",
        "ticket_offered", "ticket_refunded",
    }  # fmt: skip
    assert set(defaults["types"]) == expected_types

    changed = await client.put(
        "/v1/notifications/preferences",
        json={
            "types": {"chat_message": {"push": False}, "premium_offer": {"email": False, "in_app": False}},
            "quiet_hours": {"start": "22:30", "end": "07:00"},
            "daily_digest": True,
        },
        headers=me.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["types"]["chat_message"] == {"in_app": True, "push": False, "email": False}
    assert body["types"]["premium_offer"] == {"in_app": False, "push": False, "email": False}
    assert body["quiet_hours"] == {"start": "22:30", "end": "07:00"}
    assert (body["daily_digest"], body["content_free_push"]) == (True, False)

    cleared = await client.put("/v1/notifications/preferences", json={"quiet_hours": None}, headers=me.headers)
    assert cleared.json()["quiet_hours"] is None
    assert cleared.json()["daily_digest"] is True
    assert (await client.get("/v1/notifications/preferences", headers=me.headers)).json() == cleared.json()


@pytest.mark.parametrize(
    "body",
    [
        {"types": {"no_such_type": {"push": False}}},
        {"types": {"chat_message": {"sms": True}}},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "07:00", "end": "07:00"}},
        {"daily_digest": "yes"},
        {"user_id": "usr_x"},
    ],
)
async def test_bad_preferences_are_422_and_store_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, body: dict[str, object]
) -> None:
    me = await make_account()
    assert_problem(await client.put("/v1/notifications/preferences", json=body, headers=me.headers), 422)
    async with db() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(NotificationPreference)
            .where(NotificationPreference.user_id == ids.decode(ids.Prefix.USER, me.id))
        )
    assert stored == 0


async def test_unsubscribe_link_turns_one_types_email_off(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    me = await make_account()
    token = UnsubscribeTokens(JWT_SECRET).issue(ids.decode(ids.Prefix.USER, me.id), "event_updated")

    answer = await client.get("/v1/notifications/unsubscribe", params={"token": token})

    assert answer.status_code == 200
    assert answer.json() == {"type": "event_updated", "channel": "email", "enabled": False}
    types = (await client.get("/v1/notifications/preferences", headers=me.headers)).json()["types"]
    assert types["event_updated"]["email"] is False
    assert types["event_cancelled"]["email"] is True
    forged = UnsubscribeTokens("x" * 40).issue(ids.decode(ids.Prefix.USER, me.id), "event_cancelled")
    assert_problem(await client.get("/v1/notifications/unsubscribe", params={"token": forged}), 422, "invalid_token")
    assert_problem(await client.get("/v1/notifications/unsubscribe"), 422)

    one_click = UnsubscribeTokens(JWT_SECRET).issue(ids.decode(ids.Prefix.USER, me.id), "premium_offer")
    posted = await client.post(
        "/v1/notifications/unsubscribe",
        params={"token": one_click},
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"type": "premium_offer", "channel": "email", "enabled": False}


async def test_devices_register_move_and_delete(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me, other = await make_account(), await make_account()
    token = f"ExponentPushToken[{uuid.uuid4().hex}]"

    created = await client.post("/v1/devices", json={"platform": "ios", "token": token}, headers=me.headers)
    assert created.status_code == 201
    assert set(created.json()) == {"platform", "token", "created_at"}
    again = await client.post("/v1/devices", json={"platform": "ios", "token": token}, headers=me.headers)
    assert again.status_code == 201

    assert_problem(await client.delete(f"/v1/devices/{token}", headers=other.headers), 404, "device_not_found")
    # The same installation signed in as someone else: the token follows the newest owner.
    moved = await client.post("/v1/devices", json={"platform": "android", "token": token}, headers=other.headers)
    assert moved.status_code == 201
    assert_problem(await client.delete(f"/v1/devices/{token}", headers=me.headers), 404)
    gone = await client.delete(f"/v1/devices/{token}", headers=other.headers)
    assert gone.status_code == 204
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Device).where(Device.token == token)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "blackberry", "token": "ExponentPushToken[abcdefgh]"},
        {"platform": "ios", "token": "short"},
        {"platform": "ios"},
        {"platform": "ios", "token": "ExponentPushToken[abcdefgh]", "user_id": "usr_x"},
    ],
)
async def test_bad_device_registrations_are_422(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, body: dict[str, object]
) -> None:
    me = await make_account()
    assert_problem(await client.post("/v1/devices", json=body, headers=me.headers), 422)
    async with db() as session:
        mine = await session.scalar(
            select(func.count()).select_from(Device).where(Device.user_id == ids.decode(ids.Prefix.USER, me.id))
        )
    assert mine == 0


async def test_concurrent_read_all_and_reads_mark_each_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    me = await make_account()
    created = await arrange(db, me, 6)
    results = await asyncio.gather(
        client.post("/v1/notifications/read-all", headers=me.headers),
        client.post("/v1/notifications/read-all", headers=me.headers),
        *(client.post(f"/v1/notifications/{n}/read", headers=me.headers) for n in created[:3]),
    )
    assert all(r.status_code == 200 for r in results)
    # Each notification is marked by exactly one caller: the three never read singly by one read-all.
    assert 3 <= sum(r.json()["updated"] for r in results[:2]) <= 6
    assert (await client.get("/v1/notifications/unread-count", headers=me.headers)).json() == {"count": 0}
