"""A paid boost lifts an event in "events for you" only while its window is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.discovery.scoring import boost_share
from shared.domain.payments.models import Boost
from tests.api.conftest import MakeAccount
from tests.api.discovery.support import event_recs, town
from tests.api.events.helpers import create_event, make_organizer, soon
from tests.api.payment_support import GOOD_CARD, MakeCard

Sessions = async_sessionmaker[AsyncSession]


async def test_a_boost_lifts_a_recommended_event_only_inside_its_window(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: Sessions,
) -> None:
    city = town()
    me = await make_account(city=city)
    organizer = await make_organizer(make_account, db)
    loc = {"name": "Hall", "latitude": 30.27, "longitude": -97.74, "city": city}
    events = []
    for days in (2, 3):
        start = soon(days=days)
        events.append(
            await create_event(
                client,
                organizer,
                location=loc,
                tags=["misc"],
                start_time=start.isoformat(),
                end_time=(start + timedelta(hours=2)).isoformat(),
            )
        )
    before = await event_recs(client, me)
    assert [i["id"] for i in before] == events  # the sooner one first, nothing else sets them apart
    leader, trailer = before
    assert trailer["reason"] != "Sponsored"

    async def buy(**body: object) -> str:
        bought = await client.post(
            f"/v1/events/{trailer['id']}/boost",
            json={"placement": "discover_feed", "hours": 1, "payment_method_id": await make_card(GOOD_CARD), **body},
            headers=organizer.headers,
        )
        assert bought.status_code == 201, bought.text
        boost_id: str = bought.json()["boost_id"]
        return boost_id

    # Booked for later: the list does not change yet.
    await buy(starts_at=(datetime.now(UTC) + timedelta(hours=5)).isoformat())
    assert await event_recs(client, me) == before

    # Live now: the trailer leads, marked sponsored, its score raised by the boost's share.
    live = await buy()
    during = await event_recs(client, me)
    assert [i["id"] for i in during] == [trailer["id"], leader["id"]]
    assert during[0]["reason"] == "Sponsored"
    assert during[0]["score"] == pytest.approx(trailer["score"] + boost_share())
    assert during[1] == leader
    # Cursor pages follow the live order and list each event once.
    first = await client.get("/v1/events/recommendations", params={"limit": 1}, headers=me.headers)
    second = await client.get(
        "/v1/events/recommendations", params={"limit": 1, "cursor": first.json()["next_cursor"]}, headers=me.headers
    )
    assert [i["id"] for i in first.json()["items"] + second.json()["items"]] == [trailer["id"], leader["id"]]

    # The window closes (moved into the past): the stored order and reason return without a refresh.
    async with db.begin() as session:
        await session.execute(
            update(Boost)
            .where(Boost.id == ids.decode(ids.Prefix.BOOST, live))
            .values(starts_at=Boost.starts_at - timedelta(hours=2), ends_at=Boost.ends_at - timedelta(hours=2))
        )
    assert await event_recs(client, me) == before
