"""Follows and blocks through real HTTP."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.domain.social.models import Block, Follow, FriendRequest, Friendship, Vouch
from shared.domain.social.services import has_blocked, is_blocked_between
from tests.api.conftest import Account, MakeAccount
from tests.api.social.helpers import count, events, problem, uid


async def follows(db: async_sessionmaker[AsyncSession], follower: Account, followee: Account) -> int:
    return await count(db, Follow, Follow.follower_id == uid(follower.id), Follow.followee_id == uid(followee.id))


async def test_follow_is_idempotent_and_listed(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    creator = await make_account(display_name="Creator")
    fan = await make_account(display_name="Fan")

    first = await client.post(f"/v1/users/{creator.id}/follow", headers=fan.headers)
    assert first.status_code == 201, first.text
    assert first.json()["user_id"] == creator.id
    assert first.json()["following"] is True
    again = await client.post(f"/v1/users/{creator.id}/follow", headers=fan.headers)
    assert again.status_code == 200
    assert again.json()["since"] == first.json()["since"]
    assert await follows(db, fan, creator) == 1

    followed = [e for e in await events(db, "user.followed") if isinstance(e, bus.UserFollowed)]
    assert [e.follower_id for e in followed if e.followee_id == uid(creator.id)] == [uid(fan.id)]

    followers = (await client.get(f"/v1/users/{creator.id}/followers", headers=fan.headers)).json()
    assert [(f["id"], f["display_name"]) for f in followers["items"]] == [(fan.id, "Fan")]
    assert followers["items"][0]["since"] == first.json()["since"]
    following = (await client.get("/v1/users/me/following", headers=fan.headers)).json()
    assert [f["id"] for f in following["items"]] == [creator.id]
    assert (await client.get(f"/v1/users/{fan.id}/followers", headers=creator.headers)).json()["items"] == []

    gone = await client.delete(f"/v1/users/{creator.id}/follow", headers=fan.headers)
    assert gone.status_code == 204
    assert (await client.delete(f"/v1/users/{creator.id}/follow", headers=fan.headers)).status_code == 204
    assert await follows(db, fan, creator) == 0
    assert (await client.get(f"/v1/users/{creator.id}/followers", headers=fan.headers)).json()["items"] == []


async def test_concurrent_follows_make_one_row(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    creator = await make_account()
    fan = await make_account()
    responses = await asyncio.gather(
        *(client.post(f"/v1/users/{creator.id}/follow", headers=fan.headers) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert await follows(db, fan, creator) == 1


async def test_followers_paginate_newest_first(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creator = await make_account()
    fans = [await make_account() for _ in range(5)]
    for fan in fans:
        assert (await client.post(f"/v1/users/{creator.id}/follow", headers=fan.headers)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/users/{creator.id}/followers", params=params, headers=creator.headers)).json()
        seen += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f.id for f in reversed(fans)]


async def test_bad_follows_are_rejected(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    fan = await make_account()
    problem(await client.post(f"/v1/users/{fan.id}/follow", headers=fan.headers), 422)
    problem(await client.post("/v1/users/usr_nope/follow", headers=fan.headers), 404)
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    problem(await client.post(f"/v1/users/{missing}/follow", headers=fan.headers), 404, "user_not_found")
    problem(await client.get(f"/v1/users/{missing}/followers", headers=fan.headers), 404, "user_not_found")
    problem(await client.get(f"/v1/users/{fan.id}/following?cursor=xyz", headers=fan.headers), 422, "invalid_cursor")
    assert await count(db, Follow, Follow.follower_id == uid(fan.id)) == 0


async def test_block_severs_every_tie_and_refuses_contact(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account(display_name="Alice")
    bob = await make_account(display_name="Bob")
    # Friends, mutual follows and mutual vouches first.
    rid = (await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers)).json()["id"]
    assert (await client.post(f"/v1/friends/requests/{rid}/accept", headers=bob.headers)).status_code == 200
    for me, them in ((alice, bob), (bob, alice)):
        assert (await client.post(f"/v1/users/{them.id}/follow", headers=me.headers)).status_code == 201
        vouched = await client.post("/v1/vouches", json={"user_id": them.id, "note": "solid"}, headers=me.headers)
        assert vouched.status_code == 201

    blocked = await client.post(f"/v1/users/{bob.id}/block", headers=alice.headers)
    assert blocked.status_code == 201, blocked.text
    assert blocked.json()["user_id"] == bob.id
    again = await client.post(f"/v1/users/{bob.id}/block", headers=alice.headers)
    assert again.status_code == 200
    assert again.json()["blocked_at"] == blocked.json()["blocked_at"]

    low, high = sorted((uid(alice.id), uid(bob.id)))
    assert await count(db, Friendship, Friendship.user_low_id == low, Friendship.user_high_id == high) == 0
    assert await follows(db, alice, bob) + await follows(db, bob, alice) == 0
    between = or_(
        and_(Vouch.voucher_id == uid(alice.id), Vouch.vouchee_id == uid(bob.id)),
        and_(Vouch.voucher_id == uid(bob.id), Vouch.vouchee_id == uid(alice.id)),
    )
    assert await count(db, Vouch, between, Vouch.revoked_at.is_(None)) == 0
    assert (await client.get("/v1/friends", headers=bob.headers)).json()["items"] == []

    # Bob, the blocked one, sees no profile and cannot reach Alice: all 404, as if she did not exist.
    problem(await client.get(f"/v1/users/{alice.id}", headers=bob.headers), 404, "user_not_found")
    problem(await client.post(f"/v1/users/{alice.id}/follow", headers=bob.headers), 404, "user_not_found")
    problem(
        await client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=bob.headers),
        404,
        "user_not_found",
    )
    problem(
        await client.post("/v1/vouches", json={"user_id": alice.id, "note": "hi"}, headers=bob.headers),
        404,
        "user_not_found",
    )
    problem(await client.get(f"/v1/users/{alice.id}/followers", headers=bob.headers), 404)
    problem(await client.get(f"/v1/users/{alice.id}/vouches", headers=bob.headers), 404)
    # Alice, the blocker, still sees Bob but must unblock before reaching out: 403.
    assert (await client.get(f"/v1/users/{bob.id}", headers=alice.headers)).status_code == 200
    problem(await client.post(f"/v1/users/{bob.id}/follow", headers=alice.headers), 403, "user_blocked")
    problem(
        await client.post("/v1/friends/requests", json={"user_id": bob.id}, headers=alice.headers), 403, "user_blocked"
    )
    assert await follows(db, alice, bob) + await follows(db, bob, alice) == 0

    listed = (await client.get("/v1/users/me/blocks", headers=alice.headers)).json()
    assert [(b["id"], b["display_name"]) for b in listed["items"]] == [(bob.id, "Bob")]
    assert (await client.get("/v1/users/me/blocks", headers=bob.headers)).json()["items"] == []

    async with db() as session:
        assert await has_blocked(session, uid(alice.id), uid(bob.id))
        assert not await has_blocked(session, uid(bob.id), uid(alice.id))
        assert await is_blocked_between(session, uid(bob.id), uid(alice.id))

    assert (await client.delete(f"/v1/users/{bob.id}/block", headers=alice.headers)).status_code == 204
    assert (await client.delete(f"/v1/users/{bob.id}/block", headers=alice.headers)).status_code == 204
    assert (await client.get(f"/v1/users/{alice.id}", headers=bob.headers)).status_code == 200
    assert (await client.post(f"/v1/users/{alice.id}/follow", headers=bob.headers)).status_code == 201
    assert (await client.get("/v1/users/me/blocks", headers=alice.headers)).json()["items"] == []
    async with db() as session:
        assert not await is_blocked_between(session, uid(alice.id), uid(bob.id))


async def test_block_cancels_pending_requests_both_ways(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    bob = await make_account()
    rid = (await client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=bob.headers)).json()["id"]
    assert (await client.post(f"/v1/users/{bob.id}/block", headers=alice.headers)).status_code == 201
    assert (await client.get("/v1/friends/requests", headers=alice.headers)).json()["items"] == []
    assert (await client.get("/v1/friends/requests?direction=outgoing", headers=bob.headers)).json()["items"] == []
    problem(await client.post(f"/v1/friends/requests/{rid}/accept", headers=alice.headers), 409)
    assert (
        await count(
            db,
            FriendRequest,
            FriendRequest.id == ids.decode(ids.Prefix.FRIEND_REQUEST, rid),
            FriendRequest.status == "cancelled",
        )
        == 1
    )


async def test_lists_leave_out_users_in_a_block_with_the_viewer(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    creator = await make_account()
    fan = await make_account()
    viewer = await make_account()
    assert (await client.post(f"/v1/users/{creator.id}/follow", headers=fan.headers)).status_code == 201
    vouch = await client.post("/v1/vouches", json={"user_id": creator.id, "note": "great host"}, headers=fan.headers)
    assert vouch.status_code == 201
    before = (await client.get(f"/v1/users/{creator.id}/followers", headers=viewer.headers)).json()["items"]
    assert [f["id"] for f in before] == [fan.id]

    assert (await client.post(f"/v1/users/{viewer.id}/block", headers=fan.headers)).status_code == 201
    assert (await client.get(f"/v1/users/{creator.id}/followers", headers=viewer.headers)).json()["items"] == []
    assert (await client.get(f"/v1/users/{creator.id}/vouches", headers=viewer.headers)).json()["items"] == []
    # Others still see the fan.
    assert len((await client.get(f"/v1/users/{creator.id}/vouches", headers=creator.headers)).json()["items"]) == 1


async def test_bad_blocks_are_rejected(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    alice = await make_account()
    problem(await client.post(f"/v1/users/{alice.id}/block", headers=alice.headers), 422)
    problem(await client.post("/v1/users/evt_nope/block", headers=alice.headers), 404)
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    problem(await client.post(f"/v1/users/{missing}/block", headers=alice.headers), 404, "user_not_found")
    problem(await client.get("/v1/users/me/blocks?limit=-3", headers=alice.headers), 422)
    assert await count(db, Block, Block.blocker_id == uid(alice.id)) == 0


async def test_concurrent_block_and_friend_request_leave_no_tie(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(3):
        alice = await make_account()
        bob = await make_account()
        await asyncio.gather(
            client.post(f"/v1/users/{bob.id}/block", headers=alice.headers),
            client.post("/v1/friends/requests", json={"user_id": alice.id}, headers=bob.headers),
            client.post(f"/v1/users/{alice.id}/follow", headers=bob.headers),
            client.post("/v1/vouches", json={"user_id": alice.id, "note": "x"}, headers=bob.headers),
        )
        pending = and_(FriendRequest.sender_id == uid(bob.id), FriendRequest.status == "pending")
        assert await count(db, FriendRequest, pending) == 0
        assert await follows(db, bob, alice) == 0
        assert await count(db, Vouch, Vouch.voucher_id == uid(bob.id), Vouch.revoked_at.is_(None)) == 0
