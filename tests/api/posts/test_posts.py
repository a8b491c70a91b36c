"""Posts in clubs and on profiles through real HTTP: create, read, edit, delete, pin, bad input."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from tests.api.club_support import add_member, create_club
from tests.api.conftest import MakeAccount
from tests.api.posts.support import club_post, feed_ids, follow, post_rows, profile_post
from tests.api.social.helpers import events, problem


async def test_club_post_contract_and_card(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account(display_name="Alex")
    club = await create_club(client, owner)
    event = ids.encode(ids.Prefix.EVENT, ids.uuid7())
    created = await client.post(
        f"/v1/clubs/{club['id']}/posts",
        json={"content": " Weekly plan ", "event_id": event, "tags": ["Hiking"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "created_at"}
    assert body["id"].startswith("post_")
    feed = (await client.get(f"/v1/clubs/{club['id']}/feed", headers=owner.headers)).json()
    assert feed["next_cursor"] is None
    [item] = feed["items"]
    assert item["id"] == body["id"]
    assert item["type"] == "post"
    assert item["author"] == {"id": owner.id, "display_name": "Alex", "avatar_url": None}
    assert item["content"] == "Weekly plan"
    assert item["media"] == []
    assert item["event_id"] == event
    assert item["tags"] == ["hiking"]
    assert item["club"]["id"] == club["id"]
    assert item["visibility"] is None
    assert item["reactions"] == {}
    assert item["my_reactions"] == []
    assert item["comment_count"] == 0
    assert item["created_at"] == body["created_at"]
    detail = await client.get(f"/v1/posts/{body['id']}", headers=owner.headers)
    assert detail.status_code == 200
    assert detail.json() == item
    [event_] = [e for e in await events(db, "post.created") if e.post_id == ids.decode(ids.Prefix.POST, body["id"])]  # type: ignore[union-attr]
    assert isinstance(event_, bus.PostCreated)
    assert event_.author_id == ids.decode(ids.Prefix.USER, owner.id)
    assert event_.club_id == ids.decode(ids.Prefix.CLUB, club["id"])


async def test_edit_delete_and_pin(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, author, mod, other = [await make_account() for _ in range(4)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, author)
    await add_member(client, club, owner, mod, "moderator")
    await add_member(client, club, owner, other)
    post_id = await club_post(client, club["id"], author, "first draft")

    denied = await client.patch(f"/v1/posts/{post_id}", json={"content": "hijack"}, headers=other.headers)
    problem(denied, 403, "not_author")
    edited = await client.patch(f"/v1/posts/{post_id}", json={"content": "final"}, headers=author.headers)
    assert edited.status_code == 200
    assert edited.json()["content"] == "final"
    assert edited.json()["edited_at"] is not None
    problem(await client.patch(f"/v1/posts/{post_id}", json={"visibility": "public"}, headers=author.headers), 422)
    problem(await client.patch(f"/v1/posts/{post_id}", json={"club_id": club["id"]}, headers=author.headers), 422)

    problem(await client.post(f"/v1/posts/{post_id}/pin", headers=author.headers), 403, "insufficient_role")
    pinned = await client.post(f"/v1/posts/{post_id}/pin", headers=mod.headers)
    assert pinned.status_code == 200
    assert pinned.json()["pinned"] is True
    unpinned = await client.delete(f"/v1/posts/{post_id}/pin", headers=mod.headers)
    assert unpinned.status_code == 200
    assert unpinned.json()["pinned"] is False

    problem(await client.delete(f"/v1/posts/{post_id}", headers=other.headers), 403)
    assert (await client.delete(f"/v1/posts/{post_id}", headers=mod.headers)).status_code == 204
    problem(await client.get(f"/v1/posts/{post_id}", headers=author.headers), 404, "post_not_found")
    assert await feed_ids(client, f"/v1/clubs/{club['id']}/feed", owner) == []
    own = await club_post(client, club["id"], author)
    assert (await client.delete(f"/v1/posts/{own}", headers=author.headers)).status_code == 204
    problem(await client.delete(f"/v1/posts/{own}", headers=author.headers), 404)


async def test_posting_rights_and_spaces(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, member = await make_account(), await make_account()
    club = await create_club(client, owner, kind="community")
    await add_member(client, club, owner, member)
    spaces = f"/v1/clubs/{club['id']}/spaces"
    news = (
        await client.post(spaces, json={"name": "News", "who_can_post": "moderators"}, headers=owner.headers)
    ).json()
    talk = (await client.post(spaces, json={"name": "Talk"}, headers=owner.headers)).json()
    path = f"/v1/clubs/{club['id']}/posts"
    problem(
        await client.post(path, json={"content": "x", "space_id": news["id"]}, headers=member.headers),
        403,
        "posting_restricted",
    )
    in_talk = await club_post(client, club["id"], member, "chat", space_id=talk["id"])
    in_news = await club_post(client, club["id"], owner, "news", space_id=news["id"])
    talk_feed = await feed_ids(client, f"/v1/clubs/{club['id']}/feed", member, space_id=talk["id"])
    assert talk_feed == [in_talk]
    assert await feed_ids(client, f"/v1/clubs/{club['id']}/feed", member) == [in_news, in_talk]
    detail = (await client.get(f"/v1/posts/{in_talk}", headers=member.headers)).json()
    assert detail["space_id"] == talk["id"]
    restricted = await client.patch(
        f"/v1/clubs/{club['id']}", json={"settings": {"who_can_post": "moderators"}}, headers=owner.headers
    )
    assert restricted.status_code == 200
    problem(await client.post(path, json={"content": "x"}, headers=member.headers), 403, "posting_restricted")


async def test_bad_post_input_stores_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    club, other_club = await create_club(client, owner), await create_club(client, owner)
    foreign_space = (
        await client.post(f"/v1/clubs/{other_club['id']}/spaces", json={"name": "Elsewhere"}, headers=owner.headers)
    ).json()
    path = f"/v1/clubs/{club['id']}/posts"
    before = await post_rows(db)
    for body, field in (
        ({"content": "x" * 5001}, "content"),
        ({"content": "   "}, "content"),
        ({}, "content"),
        ({"content": "ok", "media_ids": ["evt_nope"]}, "media_ids[0]"),
        ({"content": "ok", "event_id": "post_123"}, "event_id"),
        ({"content": "ok", "space_id": "spc_bad"}, "space_id"),
        ({"content": "ok", "space_id": foreign_space["id"]}, "space_id"),
        ({"content": "ok", "author_id": owner.id}, "author_id"),
        ({"content": "ok", "tags": ["x" * 31]}, None),
    ):
        body_ = problem(await client.post(path, json=body, headers=owner.headers), 422)
        if field is not None:
            assert field in {e["field"] for e in body_.get("errors", [])} or field in body_["detail"], body_
    problem(await client.post(path, content=b"{not json", headers=owner.headers), 400)
    problem(
        await client.post(
            f"/v1/clubs/{ids.encode(ids.Prefix.CLUB, ids.uuid7())}/posts", json={"content": "x"}, headers=owner.headers
        ),
        404,
    )
    problem(
        await client.post("/v1/users/me/posts", json={"content": "x", "visibility": "friends"}, headers=owner.headers),
        422,
    )
    assert await post_rows(db) == before
    for bad in ("post_nope", ids.encode(ids.Prefix.POST, ids.uuid7()), ids.encode(ids.Prefix.CLUB, ids.uuid7())):
        problem(await client.get(f"/v1/posts/{bad}", headers=owner.headers), 404)
        problem(await client.patch(f"/v1/posts/{bad}", json={"content": "x"}, headers=owner.headers), 404)
        problem(await client.delete(f"/v1/posts/{bad}", headers=owner.headers), 404)


async def test_profile_posts_and_visibility(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    creator, follower, stranger = await make_account(), await make_account(), await make_account()
    await follow(client, follower, creator)
    public = await profile_post(client, creator, "for all")
    fans = await profile_post(client, creator, "for followers", "followers")
    paid = await profile_post(client, creator, "for subscribers", "subscribers")
    path = f"/v1/users/{creator.id}/posts"
    assert await feed_ids(client, path, creator) == [paid, fans, public]
    assert await feed_ids(client, "/v1/users/me/posts", creator) == [paid, fans, public]
    # Neither of them subscribes, so neither sees the subscribers-only post.
    assert await feed_ids(client, path, follower) == [fans, public]
    assert await feed_ids(client, path, stranger) == [public]
    problem(await client.get(f"/v1/posts/{fans}", headers=stranger.headers), 404)
    problem(await client.get(f"/v1/posts/{paid}", headers=follower.headers), 404)
    item = (await client.get(f"/v1/posts/{fans}", headers=follower.headers)).json()
    assert item["visibility"] == "followers"
    assert item["club"] is None
    changed = await client.patch(f"/v1/posts/{fans}", json={"visibility": "public"}, headers=creator.headers)
    assert changed.status_code == 200
    assert (await client.get(f"/v1/posts/{fans}", headers=stranger.headers)).status_code == 200
    pinned = await client.post(f"/v1/posts/{public}/pin", headers=creator.headers)
    assert pinned.json()["pinned"] is True
    problem(await client.post(f"/v1/posts/{public}/pin", headers=follower.headers), 403)
    problem(
        await client.get(f"/v1/users/{ids.encode(ids.Prefix.USER, ids.uuid7())}/posts", headers=creator.headers), 404
    )
