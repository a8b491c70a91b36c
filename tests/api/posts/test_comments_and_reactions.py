"""Threaded comments and reactions through real HTTP."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.domain.posts.models import PostReaction
from tests.api.club_support import add_member, create_club
from tests.api.conftest import MakeAccount
from tests.api.posts.support import club_post, comment_rows, feed_ids
from tests.api.social.helpers import count, events, problem


async def test_threaded_comments_tombstones_and_pagination(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, member, outsider = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, member)
    post_id = await club_post(client, club["id"], owner)
    path = f"/v1/posts/{post_id}/comments"
    top = await client.post(path, json={"content": "first!"}, headers=member.headers)
    assert top.status_code == 201, top.text
    top_id = top.json()["id"]
    assert top.json()["depth"] == 0
    assert top.json()["parent_id"] is None
    assert top.json()["id"].startswith("cmt_")
    reply = (await client.post(path, json={"content": "re", "parent_id": top_id}, headers=owner.headers)).json()
    deeper = (
        await client.post(path, json={"content": "re re", "parent_id": reply["id"]}, headers=member.headers)
    ).json()
    assert (reply["depth"], deeper["depth"]) == (1, 2)
    before = await comment_rows(db)
    problem(
        await client.post(path, json={"content": "too deep", "parent_id": deeper["id"]}, headers=owner.headers),
        422,
        "thread_too_deep",
    )
    problem(await client.post(path, json={"content": "x" * 2001}, headers=owner.headers), 422)
    problem(await client.post(path, json={"content": "ok", "parent_id": "cmt_bad"}, headers=owner.headers), 422)
    # A parent from another post is refused, by the service and by the composite foreign key.
    other_post = await club_post(client, club["id"], owner)
    elsewhere = (
        await client.post(f"/v1/posts/{other_post}/comments", json={"content": "x"}, headers=owner.headers)
    ).json()
    before = await comment_rows(db)
    problem(
        await client.post(path, json={"content": "ok", "parent_id": elsewhere["id"]}, headers=owner.headers),
        422,
        "parent_not_on_post",
    )
    # Public club content is readable, but only members take part.
    problem(await client.post(path, json={"content": "hi"}, headers=outsider.headers), 403, "members_only")
    assert await comment_rows(db) == before
    for _ in range(4):
        await client.post(path, json={"content": "more"}, headers=member.headers)
    tops = await feed_ids(client, path, outsider, limit=2)
    assert tops[0] == top_id
    assert len(tops) == 5
    replies = (await client.get(path, params={"parent_id": top_id}, headers=member.headers)).json()
    assert [r["id"] for r in replies["items"]] == [reply["id"]]
    assert replies["items"][0]["reply_count"] == 1
    problem(await client.get(path, params={"parent_id": elsewhere["id"]}, headers=member.headers), 422)

    problem(await client.patch(f"/v1/comments/{reply['id']}", json={"content": "x"}, headers=member.headers), 403)
    edited = await client.patch(f"/v1/comments/{reply['id']}", json={"content": "edited"}, headers=owner.headers)
    assert edited.json()["content"] == "edited"
    assert edited.json()["edited_at"] is not None
    problem(await client.delete(f"/v1/comments/{reply['id']}", headers=outsider.headers), 403)
    assert (await client.delete(f"/v1/comments/{reply['id']}", headers=owner.headers)).status_code == 204
    tomb = (await client.get(path, params={"parent_id": top_id}, headers=member.headers)).json()["items"][0]
    assert tomb["deleted"] is True
    assert tomb["content"] is None
    assert tomb["author"] is None
    assert tomb["reply_count"] == 1
    still = (await client.get(path, params={"parent_id": reply["id"]}, headers=member.headers)).json()["items"]
    assert [c["id"] for c in still] == [deeper["id"]]
    # A moderator removes someone else's comment.
    assert (await client.delete(f"/v1/comments/{deeper['id']}", headers=owner.headers)).status_code == 204
    problem(
        await client.get(f"/v1/posts/{ids.encode(ids.Prefix.POST, ids.uuid7())}/comments", headers=owner.headers), 404
    )
    problem(
        await client.patch(
            f"/v1/comments/{ids.encode(ids.Prefix.COMMENT, ids.uuid7())}", json={"content": "x"}, headers=owner.headers
        ),
        404,
    )
    created = [e for e in await events(db, "comment.created") if isinstance(e, bus.CommentCreated)]
    mine = [e for e in created if e.comment_id == ids.decode(ids.Prefix.COMMENT, reply["id"])]
    assert len(mine) == 1
    assert mine[0].parent_id == ids.decode(ids.Prefix.COMMENT, top_id)
    assert mine[0].post_author_id == ids.decode(ids.Prefix.USER, owner.id)


async def test_reactions_counts_idempotency_and_bad_kinds(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, member = await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, member)
    post_id = await club_post(client, club["id"], owner)
    path = f"/v1/posts/{post_id}/reactions"
    first = await client.post(path, json={"kind": "fire"}, headers=member.headers)
    assert first.status_code == 200
    assert first.json() == {"reactions": {"fire": 1}, "my_reactions": ["fire"]}
    again = await client.post(path, json={"kind": "fire"}, headers=member.headers)
    assert again.json() == first.json()
    await client.post(path, json={"kind": "love"}, headers=member.headers)
    await client.post(path, json={"kind": "fire"}, headers=owner.headers)
    card = (await client.get(f"/v1/posts/{post_id}", headers=owner.headers)).json()
    assert card["reactions"] == {"fire": 2, "love": 1}
    assert card["my_reactions"] == ["fire"]
    removed = await client.delete(f"{path}/fire", headers=member.headers)
    assert removed.json() == {"reactions": {"fire": 1, "love": 1}, "my_reactions": ["love"]}
    assert (await client.delete(f"{path}/fire", headers=member.headers)).status_code == 200
    stored = await count(db, PostReaction, PostReaction.post_id == ids.decode(ids.Prefix.POST, post_id))
    problem(await client.post(path, json={"kind": "angry"}, headers=member.headers), 422)
    problem(await client.post(path, json={"kind": "like", "extra": 1}, headers=member.headers), 422)
    problem(await client.delete(f"{path}/angry", headers=member.headers), 422, "unknown_reaction_kind")
    problem(
        await client.post(
            f"/v1/posts/{ids.encode(ids.Prefix.POST, ids.uuid7())}/reactions",
            json={"kind": "like"},
            headers=member.headers,
        ),
        404,
    )
    assert await count(db, PostReaction, PostReaction.post_id == ids.decode(ids.Prefix.POST, post_id)) == stored

    comment = (await client.post(f"/v1/posts/{post_id}/comments", json={"content": "c"}, headers=owner.headers)).json()
    on_comment = await client.post(
        f"/v1/comments/{comment['id']}/reactions", json={"kind": "haha"}, headers=member.headers
    )
    assert on_comment.json() == {"reactions": {"haha": 1}, "my_reactions": ["haha"]}
    listed = (await client.get(f"/v1/posts/{post_id}/comments", headers=owner.headers)).json()["items"][0]
    assert listed["reactions"] == {"haha": 1}
    assert listed["my_reactions"] == []
    gone = await client.delete(f"/v1/comments/{comment['id']}/reactions/haha", headers=member.headers)
    assert gone.json() == {"reactions": {}, "my_reactions": []}


async def test_concurrent_identical_reactions_store_one_row(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    club = await create_club(client, owner)
    post_id = await club_post(client, club["id"], owner)
    responses = await asyncio.gather(
        *(client.post(f"/v1/posts/{post_id}/reactions", json={"kind": "like"}, headers=owner.headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {200}
    assert await count(db, PostReaction, PostReaction.post_id == ids.decode(ids.Prefix.POST, post_id)) == 1
    card = (await client.get(f"/v1/posts/{post_id}", headers=owner.headers)).json()
    assert card["reactions"] == {"like": 1}
