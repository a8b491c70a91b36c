"""Helpers for post, comment, reaction, feed and search tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.posts.models import Comment, Post
from tests.api.conftest import Account


async def club_post(
    client: httpx.AsyncClient, club_id: str, author: Account, content: str = "hello", **fields: Any
) -> str:
    """Post in a club and return the post id."""
    response = await client.post(
        f"/v1/clubs/{club_id}/posts", json={"content": content, **fields}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def profile_post(
    client: httpx.AsyncClient, author: Account, content: str = "hello", visibility: str = "public"
) -> str:
    """Post on the author's profile and return the post id."""
    response = await client.post(
        "/v1/users/me/posts", json={"content": content, "visibility": visibility}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def befriend(client: httpx.AsyncClient, a: Account, b: Account) -> None:
    """Make ``a`` and ``b`` friends."""
    sent = await client.post("/v1/friends/requests", json={"user_id": b.id}, headers=a.headers)
    assert sent.status_code in (200, 201), sent.text
    accepted = await client.post(f"/v1/friends/requests/{sent.json()['id']}/accept", headers=b.headers)
    assert accepted.status_code == 200, accepted.text


async def follow(client: httpx.AsyncClient, follower: Account, followee: Account) -> None:
    """``follower`` follows ``followee``."""
    response = await client.post(f"/v1/users/{followee.id}/follow", headers=follower.headers)
    assert response.status_code in (200, 201), response.text


async def block(client: httpx.AsyncClient, blocker: Account, blocked: Account) -> None:
    """``blocker`` blocks ``blocked``."""
    response = await client.post(f"/v1/users/{blocked.id}/block", headers=blocker.headers)
    assert response.status_code in (200, 201), response.text


async def feed_ids(client: httpx.AsyncClient, path: str, viewer: Account, **params: Any) -> list[str]:
    """Every item id of a cursor-paginated feed, following cursors to the end."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=viewer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def post_rows(db: async_sessionmaker[AsyncSession]) -> int:
    """How many post rows exist."""
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(Post)) or 0)


async def comment_rows(db: async_sessionmaker[AsyncSession]) -> int:
    """How many comment rows exist."""
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(Comment)) or 0)
