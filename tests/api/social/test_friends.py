"""Friend requests and friendships through real HTTP."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.domain.social.models import FriendRequest, Friendship
from tests.api.conftest import MakeAccount
from tests.api.social.helpers import count, events, problem, uid


async def pair_requests(db: async_sessionmaker[AsyncSession], a: str, b: str, status: str | None = None) -> int:
    between = or_(
        and_(FriendRequest.sender_id == uid(a), FriendRequest.recipient_id == uid(b)),
        and_(FriendRequest.sender_id == uid(b), FriendRequest.recipient_id == uid(a)),
    )
    if status is None:
        return await count(db, FriendRequest, between)
    return await count(db, FriendRequest, between, FriendRequest.status == status)


async def friendships(db: async_sessionmaker[AsyncSession], a: str, b: str) -> int:
    low, high = sorted((uid(a), uid(b)))
    return await count(db, Friendship, Friendship.user_low_id == low, Friendship.user_high_id == high)


async def test_request_accept_list_and_unfriend(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account(display_name="Alice")
    bob = await make_account(display_name="Bob")

    sent = await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)
    assert sent.status_code == 201, sent.text
    request = sent.json()
    assert request["id"].startswith("frq_")
    assert request["status"] == "pending"
    assert request["sender"] == {"id": alice.id, "display_name": "Alice", "avatar_url": None}
    assert request["recipient"]["id"] == bob.id
    assert request["responded_at"] is None

    incoming = (await client.get("/v1/friends/requests?direction=incoming", headers=bob.headers)).json()
    assert [r["id"] for r in incoming["items"]] == [request["id"]]
    assert incoming["next_cursor"] is None
    outgoing = (await client.get("/v1/friends/requests?direction=outgoing", headers=alice.headers)).json()
    assert [r["id"] for r in outgoing["items"]] == [request["id"]]
    assert (await client.get("/v1/friends/requests", headers=alice.headers)).json()["items"] == []

    accepted = await client.post(f"/v1/friends/requests/{request['id']}/accept", headers=bob.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["responded_at"] is not None

    for me, friend, name in ((alice, bob, "Bob"), (bob, alice, "Alice")):
        listed = await client.get("/v1/friends", headers=me.headers)
        assert listed.status_code == 200
        [item] = listed.json()["items"]
        assert item["id"] == friend.id
        assert item["display_name"] == name
        assert set(item) == {"id", "display_name", "avatar_url", "since"}
    assert (await client.get("/v1/friends/requests?direction=incoming", headers=bob.headers)).json()["items"] == []

    accepted_events = [
        e
        for e in await events(db, "friend.accepted")
        if isinstance(e, bus.FriendAccepted) and e.accepter_id == uid(bob.id)
    ]
    assert [(e.requester_id, e.request_id) for e in accepted_events] == [
        (uid(alice.id), ids.decode(ids.Prefix.FRIEND_REQUEST, request["id"]))
    ]
    requested = [e for e in await events(db, "friend.requested") if isinstance(e, bus.FriendRequested)]
    assert any(e.sender_id == uid(alice.id) and e.recipient_id == uid(bob.id) for e in requested)

    again = await client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=bob.headers)
    problem(again, 409, "already_friends")
    assert await pair_requests(db, alice.id, bob.id) == 1

    gone = await client.delete(f"/v1/friends/{alice.id}", headers=bob.headers)
    assert gone.status_code == 204
    assert (await client.get("/v1/friends", headers=alice.headers)).json()["items"] == []
    assert await friendships(db, alice.id, bob.id) == 0
    problem(await client.delete(f"/v1/friends/{alice.id}", headers=bob.headers), 404, "not_friends")


async def test_requesting_someone_who_asked_you_accepts_their_request(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    first = (await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)).json()
    back = await client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=bob.headers)
    assert back.status_code == 200, back.text
    assert back.json()["id"] == first["id"]
    assert back.json()["status"] == "accepted"
    assert await friendships(db, alice.id, bob.id) == 1
    assert await pair_requests(db, alice.id, bob.id) == 1


async def test_duplicate_pending_request_returns_the_open_one(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    first = await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)
    repeat = await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["id"] == first.json()["id"]
    assert repeat.json()["status"] == "pending"
    assert await pair_requests(db, alice.id, bob.id) == 1


async def test_concurrent_requests_in_both_directions_make_one_friendship(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(3):
        alice = await make_account()
        bob = await make_account()
        responses = await asyncio.gather(
            *(
                client.post("/v1/friends/requests", json={"user_id": them.id}, headers=me.headers)
                for me, them in [(alice, bob), (bob, alice)] * 4
            )
        )
        codes = [r.status_code for r in responses]
        # One creates the request, the other side's first attempt accepts it, later ones find friends.
        assert codes.count(201) == 1, [r.text for r in responses]
        assert set(codes) <= {200, 201, 409}
        assert all(r.json()["code"] == "already_friends" for r in responses if r.status_code == 409)
        answered = [r.json() for r in responses if r.status_code != 409]
        assert len({r["id"] for r in answered}) == 1
        assert any(r["status"] == "accepted" for r in answered)
        assert await friendships(db, alice.id, bob.id) == 1
        assert await pair_requests(db, alice.id, bob.id) == 1
        assert await pair_requests(db, alice.id, bob.id, status="pending") == 0
        [friend] = (await client.get("/v1/friends", headers=alice.headers)).json()["items"]
        assert friend["id"] == bob.id


async def test_decline_and_cancel(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    first = (await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)).json()
    declined = await client.post(f"/v1/friends/requests/{first['id']}/decline", headers=bob.headers)
    assert declined.status_code == 200
    assert declined.json()["status"] == "declined"
    problem(await client.post(f"/v1/friends/requests/{first['id']}/accept", headers=bob.headers), 409)
    assert await friendships(db, alice.id, bob.id) == 0
    assert (await client.get("/v1/friends/requests?direction=outgoing", headers=alice.headers)).json()["items"] == []

    # A declined request does not stop a later one.
    second = await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)
    assert second.status_code == 201
    assert second.json()["id"] != first["id"]
    cancelled = await client.delete(f"/v1/friends/requests/{second.json()['id']}", headers=alice.headers)
    assert cancelled.status_code == 204
    assert (await client.get("/v1/friends/requests", headers=bob.headers)).json()["items"] == []
    problem(
        await client.post(f"/v1/friends/requests/{second.json()['id']}/accept", headers=bob.headers),
        409,
        "friend_request_not_pending",
    )
    assert await pair_requests(db, alice.id, bob.id, status="cancelled") == 1
    assert await friendships(db, alice.id, bob.id) == 0


async def test_other_users_request_ids_are_not_found(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    mallory = await make_account()
    rid = (await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)).json()["id"]

    # Only the recipient answers, only the sender cancels; everyone else sees nothing.
    for who in (mallory, alice):
        problem(await client.post(f"/v1/friends/requests/{rid}/accept", headers=who.headers), 404)
        problem(await client.post(f"/v1/friends/requests/{rid}/decline", headers=who.headers), 404)
    for who in (mallory, bob):
        problem(await client.delete(f"/v1/friends/requests/{rid}", headers=who.headers), 404)
    for bad in ("nope", f"usr_{rid[4:]}", "frq_" + "z" * 26):
        problem(await client.post(f"/v1/friends/requests/{bad}/accept", headers=bob.headers), 404)
    assert await pair_requests(db, alice.id, bob.id, status="pending") == 1
    assert await friendships(db, alice.id, bob.id) == 0


async def test_bad_friend_requests_are_rejected_and_store_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    before = await count(db, FriendRequest, FriendRequest.sender_id == uid(alice.id))
    problem(await client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=alice.headers), 422)
    problem(await client.post("/v1/friends/requests", json={"user_id": "usr_bad"}, headers=alice.headers), 422)
    problem(await client.post("/v1/friends/requests", json={}, headers=alice.headers), 422)
    problem(
        await client.post(
            "/v1/friends/requests", json={"user_id": bob.id, "status": "accepted"}, headers=alice.headers
        ),
        422,
    )
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    problem(
        await client.post("/v1/friends/requests", json={"user_id": missing}, headers=alice.headers),
        404,
        "user_not_found",
    )
    problem(
        await client.post(
            "/v1/friends/requests", content=b"{", headers={**alice.headers, "content-type": "application/json"}
        ),
        400,
    )
    problem(await client.get("/v1/friends/requests?direction=sideways", headers=alice.headers), 422)
    problem(await client.get("/v1/friends?cursor=garbage", headers=alice.headers), 422, "invalid_cursor")
    problem(await client.get("/v1/friends?limit=0", headers=alice.headers), 422)
    problem(await client.post("/v1/friends/requests", json={"user_id": bob.id}), 401)
    assert await count(db, FriendRequest, FriendRequest.sender_id == uid(alice.id)) == before == 0


async def test_friends_and_requests_paginate(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    hub = await make_account()
    others = [await make_account(display_name=f"Friend {i}") for i in range(5)]
    for other in others:
        sent = await client.post("/v1/friends/requests", json={"user_id": hub.id}, headers=other.headers)
        assert sent.status_code == 201

    seen: list[str] = []
    cursor = None
    while True:
        params = {"direction": "incoming", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/friends/requests", params=params, headers=hub.headers)).json()
        assert len(page["items"]) <= 2
        seen += [r["sender"]["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [o.id for o in reversed(others)]

    incoming = (await client.get("/v1/friends/requests?limit=100", headers=hub.headers)).json()["items"]
    for request in incoming:
        ok = await client.post(f"/v1/friends/requests/{request['id']}/accept", headers=hub.headers)
        assert ok.status_code == 200

    friends: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/friends", params=params, headers=hub.headers)).json()
        friends += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Accepted newest request first, so the newest friendship is the oldest request's sender.
    assert friends == [r["sender"]["id"] for r in reversed(incoming)]
    assert len(set(friends)) == 5
