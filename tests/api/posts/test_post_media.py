"""Media on posts through real HTTP: real uploads to SeaweedFS, claimed in the post's transaction."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.media.models import MediaStatus
from shared.domain.posts.models import Post
from shared.storage import Storage
from tests.api.club_support import add_member, create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.media_support import media_row, object_exists, png, ready_photo, request_upload
from tests.api.posts.support import follow
from tests.api.social.helpers import problem

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def storage(engine_env: dict[str, str]) -> Storage:
    """An S3 client on the session's SeaweedFS, like the API's."""
    return Storage(load_settings(engine_env))


async def posts_by(db: async_sessionmaker[AsyncSession], author: Account) -> int:
    """How many post rows ``author`` has."""
    async with db() as session:
        query = select(func.count()).select_from(Post).where(Post.author_id == ids.decode(ids.Prefix.USER, author.id))
        return int(await session.scalar(query) or 0)


async def test_club_and_profile_posts_show_their_media_on_every_read(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, reader = await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, reader)
    first, second = await ready_photo(client, owner), await ready_photo(client, owner)
    created = await client.post(
        f"/v1/clubs/{club['id']}/posts",
        json={"content": "Trail photos", "media_ids": [second, first]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]

    detail = await client.get(f"/v1/posts/{post_id}", headers=reader.headers)
    assert detail.status_code == 200, detail.text
    media = detail.json()["media"]
    assert [m["id"] for m in media] == [second, first]
    for item in media:
        assert item["status"] == "ready"
        assert item["url"]
        assert "w256" in [v["name"] for v in item["variants"]]
        async with httpx.AsyncClient(timeout=10) as cdn:
            fetched = await cdn.get(item["url"])
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/webp"

    club_feed = (await client.get(f"/v1/clubs/{club['id']}/feed", headers=reader.headers)).json()
    [card] = [i for i in club_feed["items"] if i["id"] == post_id]
    assert [m["id"] for m in card["media"]] == [second, first]
    home = (await client.get("/v1/feed", headers=reader.headers)).json()
    [card] = [i for i in home["items"] if i["id"] == post_id]
    assert [m["id"] for m in card["media"]] == [second, first]
    row = await media_row(db, first)
    assert row is not None
    assert (row.attached_to_kind, row.attached_to_id) == ("post", ids.decode(ids.Prefix.POST, post_id))

    follower = await make_account()
    await follow(client, follower, owner)
    photo = await ready_photo(client, owner)
    profile = await client.post(
        "/v1/users/me/posts",
        json={"content": "Mine", "visibility": "followers", "media_ids": [photo]},
        headers=owner.headers,
    )
    assert profile.status_code == 201, profile.text
    home = (await client.get("/v1/feed", headers=follower.headers)).json()
    [card] = [i for i in home["items"] if i["id"] == profile.json()["id"]]
    assert [m["id"] for m in card["media"]] == [photo]


async def test_foreign_unready_and_reused_media_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, other = await make_account(), await make_account()
    club = await create_club(client, owner)
    theirs = await ready_photo(client, other)
    pending = (await request_upload(client, owner, png(), "image/png"))["media_id"]
    path = f"/v1/clubs/{club['id']}/posts"

    response = await client.post(path, json={"content": "x", "media_ids": [theirs]}, headers=owner.headers)
    problem(response, 404, "media_not_found")
    response = await client.post(path, json={"content": "x", "media_ids": [pending]}, headers=owner.headers)
    problem(response, 422, "media_not_ready")
    unknown = ids.encode(ids.Prefix.MEDIA, ids.uuid7())
    response = await client.post(
        "/v1/users/me/posts", json={"content": "x", "media_ids": [unknown]}, headers=owner.headers
    )
    problem(response, 404, "media_not_found")
    response = await client.post(path, json={"content": "x", "media_ids": ["evt_nope"]}, headers=owner.headers)
    problem(response, 422)
    assert await posts_by(db, owner) == 0
    row = await media_row(db, pending)
    assert row is not None
    assert row.attached_to_id is None

    mine = await ready_photo(client, owner)
    first = await client.post(path, json={"content": "a", "media_ids": [mine]}, headers=owner.headers)
    assert first.status_code == 201, first.text
    again = await client.post(path, json={"content": "b", "media_ids": [mine]}, headers=owner.headers)
    problem(again, 409, "media_already_attached")
    assert await posts_by(db, owner) == 1


async def test_editing_swaps_media_and_deleting_a_post_deletes_its_media_objects(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    author = await make_account()
    kept, dropped = await ready_photo(client, author), await ready_photo(client, author)
    created = await client.post(
        "/v1/users/me/posts", json={"content": "x", "media_ids": [kept, dropped]}, headers=author.headers
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]
    edited = await client.patch(f"/v1/posts/{post_id}", json={"media_ids": [kept]}, headers=author.headers)
    assert edited.status_code == 200, edited.text
    assert [m["id"] for m in edited.json()["media"]] == [kept]
    released = await media_row(db, dropped)
    assert released is not None
    assert released.attached_to_id is None

    row = await media_row(db, kept)
    assert row is not None
    keys = [row.object_key, *row.variants.values()]
    assert all([await object_exists(storage, k) for k in keys])
    assert (await client.delete(f"/v1/posts/{post_id}", headers=author.headers)).status_code == 204
    assert (await client.get(f"/v1/media/{kept}", headers=author.headers)).status_code == 404
    async with asyncio.timeout(15):
        while any([await object_exists(storage, k) for k in keys]) or await media_row(db, kept) is not None:
            await asyncio.sleep(0.1)
    still = await media_row(db, dropped)
    assert still is not None
    assert still.status == MediaStatus.READY.value


async def test_two_posts_racing_for_one_media_item_attach_it_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    author = await make_account()
    photo = await ready_photo(client, author)
    club = await create_club(client, author)

    async def post(path: str, body: dict[str, object]) -> httpx.Response:
        return await client.post(path, json={"content": "race", "media_ids": [photo], **body}, headers=author.headers)

    responses = await asyncio.gather(
        post(f"/v1/clubs/{club['id']}/posts", {}),
        post("/v1/users/me/posts", {}),
        post(f"/v1/clubs/{club['id']}/posts", {}),
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    for response in responses:
        if response.status_code == 409:
            problem(response, 409, "media_already_attached")
    assert await posts_by(db, author) == 1
    [winner] = [r.json()["id"] for r in responses if r.status_code == 201]
    row = await media_row(db, photo)
    assert row is not None
    assert row.attached_to_id == ids.decode(ids.Prefix.POST, winner)
