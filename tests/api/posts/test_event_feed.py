"""Events in the home and club feeds through real HTTP: which events appear, their cards and their order."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.club_support import add_member, create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, make_organizer, rsvp
from tests.api.posts.support import block, club_post, feed_ids, follow, profile_post


async def items(client: httpx.AsyncClient, path: str, viewer: Account) -> list[dict[str, Any]]:
    """The first page (up to 100 items) of a feed."""
    response = await client.get(path, params={"limit": 100}, headers=viewer.headers)
    assert response.status_code == 200, response.text
    page: list[dict[str, Any]] = response.json()["items"]
    return page


async def test_club_events_join_the_feeds_with_the_events_visibility_rules(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_organizer(make_account, db)
    member, outsider = await make_account(), await make_account()
    club = await create_club(client, owner)
    await add_member(client, club, owner, member)

    before = await club_post(client, club["id"], owner, "before")
    public = await create_event(client, owner, club_id=club["id"], visibility="public", title="Open ride")
    club_only = await create_event(client, owner, club_id=club["id"], visibility="club")
    await create_event(client, owner, club_id=club["id"], visibility="private")
    await create_event(client, owner, club_id=club["id"], publish=False)
    cancelled = await create_event(client, owner, club_id=club["id"])
    assert (await client.post(f"/v1/events/{cancelled}/cancel", headers=owner.headers)).status_code == 200
    after = await club_post(client, club["id"], owner, "after")
    assert (await rsvp(client, public, member))["status"] == "confirmed"

    expected = [after, club_only, public, before]
    home = await items(client, "/v1/feed", member)
    assert [i["id"] for i in home] == expected
    assert [i["type"] for i in home] == ["post", "event", "event", "post"]
    assert await feed_ids(client, "/v1/feed", member, limit=1) == expected
    club_path = f"/v1/clubs/{club['id']}/feed"
    assert [i["id"] for i in await items(client, club_path, member)] == expected
    assert await feed_ids(client, club_path, member, limit=1) == expected

    card = next(i for i in home if i["id"] == public)
    assert card["title"] == "Open ride"
    assert card["location_name"] == "Barton Creek"
    assert card["club"]["id"] == club["id"]
    assert card["organizer"]["id"] == owner.id
    assert card["attendees_count"] == 1
    event = (await client.get(f"/v1/events/{public}", headers=member.headers)).json()
    assert card["start_time"] == event["start_time"]
    assert card["end_time"] == event["end_time"]

    # Outside the club: only the public event, and nothing in the home feed.
    assert [i["id"] for i in await items(client, club_path, outsider)] == [after, public, before]
    assert [i["id"] for i in await items(client, "/v1/feed", outsider)] == []
    # A space's feed is posts only.
    assert all(i["type"] == "post" for i in await items(client, club_path, member)) is False


async def test_public_events_of_followed_organizers_and_blocks(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    fan = await make_account()
    await follow(client, fan, organizer)
    mine = await profile_post(client, organizer, "come along")
    public = await create_event(client, organizer)
    await create_event(client, organizer, visibility="private")
    other_club = await create_club(client, organizer, privacy_level="secret")
    await create_event(client, organizer, club_id=other_club["id"], visibility="club")
    assert [i["id"] for i in await items(client, "/v1/feed", fan)] == [public, mine]

    await block(client, fan, organizer)
    assert [i["id"] for i in await items(client, "/v1/feed", fan)] == []
