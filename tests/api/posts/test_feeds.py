"""Club feeds and the home feed: visibility matrix, blocks, ordering and pagination under inserts."""

from __future__ import annotations

import httpx
import pytest

from tests.api.club_support import add_member, ban, create_club, join
from tests.api.conftest import Account, MakeAccount
from tests.api.posts.support import befriend, block, club_post, feed_ids, follow, profile_post
from tests.api.social.helpers import problem


async def _viewer(
    client: httpx.AsyncClient, make_account: MakeAccount, club: dict[str, object], owner: Account, standing: str
) -> Account:
    viewer = await make_account()
    if standing == "member":
        await add_member(client, club, owner, viewer)
    elif standing == "pending":
        await join(client, str(club["id"]), viewer)
    elif standing == "banned":
        await add_member(client, club, owner, viewer)
        await ban(client, club, owner, viewer)
    elif standing == "blocked":
        await add_member(client, club, owner, viewer)
        await block(client, viewer, owner)
    return viewer


# (privacy, standing) -> what GET /clubs/{id}/feed answers: 200 with the post, 200 without it, or an error.
MATRIX = [
    ("public", "non-member", 200, True),
    ("public", "member", 200, True),
    ("public", "banned", 403, False),
    ("public", "blocked", 200, False),
    ("private", "non-member", 403, False),
    ("private", "pending", 403, False),
    ("private", "member", 200, True),
    ("private", "banned", 403, False),
    ("private", "blocked", 200, False),
    ("secret", "non-member", 404, False),
    ("secret", "member", 200, True),
    ("secret", "banned", 404, False),
    ("secret", "blocked", 200, False),
]


@pytest.mark.parametrize(("privacy", "standing", "status", "sees"), MATRIX)
async def test_club_content_visibility_matrix(
    client: httpx.AsyncClient, make_account: MakeAccount, privacy: str, standing: str, status: int, sees: bool
) -> None:
    owner = await make_account()
    club = await create_club(client, owner, privacy_level=privacy, settings={"join_approval": privacy == "private"})
    post_id = await club_post(client, club["id"], owner, "members news")
    viewer = await _viewer(client, make_account, club, owner, standing)

    feed = await client.get(f"/v1/clubs/{club['id']}/feed", headers=viewer.headers)
    detail = await client.get(f"/v1/posts/{post_id}", headers=viewer.headers)
    comments = await client.get(f"/v1/posts/{post_id}/comments", headers=viewer.headers)
    home = await feed_ids(client, "/v1/feed", viewer)
    if status == 200:
        assert feed.status_code == 200
        assert ([i["id"] for i in feed.json()["items"]] == [post_id]) is sees
        # A blocked author's post is not found; a readable one is.
        assert detail.status_code == (200 if sees else 404)
    else:
        problem(feed, status)
        problem(detail, status)
        problem(comments, status)
    # The home feed carries club posts only for active members, and never a blocked author's.
    assert (post_id in home) is (standing == "member")
    posted = await client.post(f"/v1/clubs/{club['id']}/posts", json={"content": "x"}, headers=viewer.headers)
    assert posted.status_code == (201 if standing in ("member", "blocked") else (404 if status == 404 else 403))


async def test_home_feed_mixes_sources_and_respects_visibility(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    me, friend, creator, stranger, blocked = [await make_account() for _ in range(5)]
    await befriend(client, me, friend)
    await follow(client, me, creator)
    await follow(client, me, blocked)
    club = await create_club(client, stranger, privacy_level="private", settings={"join_approval": True})
    await add_member(client, club, stranger, me)
    other_club = await create_club(client, stranger)  # not joined: its posts stay out of my feed
    expected = [
        await profile_post(client, friend, "friend public"),
        await profile_post(client, creator, "creator public"),
        await profile_post(client, creator, "creator followers", "followers"),
        await club_post(client, club["id"], stranger, "club news"),
        await profile_post(client, me, "mine, subscribers", "subscribers"),
    ]
    hidden = [
        await profile_post(client, friend, "friend followers-only", "followers"),
        await profile_post(client, creator, "creator subscribers", "subscribers"),
        await profile_post(client, stranger, "stranger public"),
        await club_post(client, other_club["id"], stranger, "not my club"),
        await profile_post(client, blocked, "blocked public"),
    ]
    await block(client, me, blocked)
    page = await client.get("/v1/feed", headers=me.headers)
    assert page.status_code == 200
    items = page.json()["items"]
    assert {i["type"] for i in items} == {"post"}
    ids_ = [i["id"] for i in items]
    assert ids_ == list(reversed(expected))
    assert not set(hidden) & set(ids_)
    assert items[1]["club"]["id"] == club["id"]
    problem(await client.get("/v1/feed", params={"cursor": "garbage"}, headers=me.headers), 422, "invalid_cursor")
    problem(await client.get("/v1/feed", params={"limit": 0}, headers=me.headers), 422)


async def test_feed_pagination_is_stable_while_posts_arrive(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    me, creator = await make_account(), await make_account()
    await follow(client, me, creator)
    club = await create_club(client, creator)
    await join(client, club["id"], me)
    older = []
    for n in range(7):
        older.append(
            await club_post(client, club["id"], creator, f"club {n}")
            if n % 2
            else await profile_post(client, creator, f"profile {n}")
        )
    first = (await client.get("/v1/feed", params={"limit": 3}, headers=me.headers)).json()
    assert [i["id"] for i in first["items"]] == older[::-1][:3]
    newer = [await club_post(client, club["id"], creator, "new"), await profile_post(client, creator, "new")]
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get("/v1/feed", params={"limit": 3, "cursor": cursor}, headers=me.headers)).json()
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
    # Nothing skipped, nothing repeated, and the new posts wait at the top for the next refresh.
    assert seen == older[::-1]
    assert (await feed_ids(client, "/v1/feed", me, limit=4))[:2] == newer[::-1]
    club_seen = await feed_ids(client, f"/v1/clubs/{club['id']}/feed", me, limit=2)
    club_posts = [older[1], older[3], older[5], newer[0]]
    assert club_seen == club_posts[::-1]
