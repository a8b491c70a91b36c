"""Search through real HTTP: typo tolerance, full text, and visibility (secret clubs, blocks, private posts)."""

from __future__ import annotations

import uuid

import httpx

from tests.api.club_support import add_member, ban, create_club
from tests.api.conftest import MakeAccount
from tests.api.posts.support import block, club_post, profile_post
from tests.api.social.helpers import problem


async def hits(client: httpx.AsyncClient, headers: dict[str, str], q: str, type_: str) -> list[str]:
    response = await client.get("/v1/search", params={"q": q, "type": type_}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [item["id"] for item in body["items"]]


async def test_search_users_clubs_and_posts_with_visibility(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    word = uuid.uuid4().hex[:8]
    name = f"Zorblax{word}"
    owner = await make_account(display_name=f"{name} Owner")
    member, outsider, banned = [await make_account() for _ in range(3)]
    blocker = await make_account(display_name=f"{name} Blocker")
    public = await create_club(client, owner, name=f"{name} Hikers", description=f"mountain {word} trips")
    private = await create_club(client, owner, name=f"{name} Inner", privacy_level="private")
    secret = await create_club(client, owner, name=f"{name} Hidden", privacy_level="secret")
    for club in (public, private, secret):
        await add_member(client, club, owner, member)
    await add_member(client, public, owner, banned)
    await ban(client, public, owner, banned)
    await block(client, blocker, outsider)

    typo = name[:-1] + "q"  # one letter wrong still finds the names
    assert set(await hits(client, outsider.headers, typo, "clubs")) == {public["id"], private["id"]}
    assert set(await hits(client, member.headers, typo, "clubs")) == {public["id"], private["id"], secret["id"]}
    assert await hits(client, outsider.headers, f"mountain {word}", "clubs") == [public["id"]]
    assert owner.id in await hits(client, outsider.headers, typo, "users")
    assert blocker.id not in await hits(client, outsider.headers, typo, "users")
    assert blocker.id in await hits(client, member.headers, typo, "users")

    in_public = await club_post(client, public["id"], owner, f"sunrise {word} on the ridge")
    in_private = await club_post(client, private["id"], owner, f"sunrise {word} members only")
    in_secret = await club_post(client, secret["id"], owner, f"sunrise {word} secret plan")
    followers_only = await profile_post(client, owner, f"sunrise {word} for fans", "followers")
    by_blocker = await profile_post(client, blocker, f"sunrise {word} from a blocker")
    query = f"sunrise {word}"
    assert set(await hits(client, member.headers, query, "posts")) == {in_public, in_private, in_secret, by_blocker}
    assert await hits(client, outsider.headers, query, "posts") == [in_public]
    assert await hits(client, banned.headers, query, "posts") == [by_blocker]
    assert followers_only in await hits(client, owner.headers, query, "posts")


async def test_bad_search_input(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    user = await make_account()
    for params in (
        {"type": "users"},
        {"q": " ", "type": "users"},
        {"q": "x", "type": "events"},
        {"q": "x" * 101, "type": "posts"},
        {"q": "x"},
    ):
        problem(await client.get("/v1/search", params=params, headers=user.headers), 422)
    problem(await client.get("/v1/search", params={"q": "x", "type": "users", "limit": 0}, headers=user.headers), 422)
    problem(await client.get("/v1/search", params={"q": "x", "type": "users"}), 401)
