"""Boosts: bought with a PaymentIntent against localstripe, ranked first only inside their window."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.events.models import Event
from shared.domain.payments.boosts import boosted_event_filter
from shared.domain.payments.models import Boost, LedgerEntry
from tests.api.club_support import outbox_events
from tests.api.club_support import uuid_of as uuid_of_str
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, make_organizer, soon
from tests.api.payment_support import CHARGE_DECLINED_CARD, DECLINED_CARD, GOOD_CARD, MakeCard
from tests.api.worker_support import run_startup_crons


def uuid_of(prefix: ids.Prefix, public_id: str) -> uuid.UUID:
    """The key behind a public id."""
    return ids.decode(prefix, public_id)


async def boost(
    client: httpx.AsyncClient, account: Account, path: str, pm: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    """POST a boost purchase."""
    payload = {"placement": "discover_feed", "hours": 2, "payment_method_id": pm, **body}
    return await client.post(path, json=payload, headers={**account.headers, **(headers or {})})


async def listed(client: httpx.AsyncClient, viewer: Account, **params: Any) -> list[str]:
    """Event ids of GET /v1/events, first page."""
    response = await client.get("/v1/events", params=params, headers=viewer.headers)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


async def boost_count(db: async_sessionmaker[AsyncSession], event_id: str) -> int:
    """Boosts stored for an event."""
    async with db() as session:
        count = await session.scalar(
            select(func.count()).select_from(Boost).where(Boost.event_id == uuid_of(ids.Prefix.EVENT, event_id))
        )
    return int(count or 0)


async def two_events(client: httpx.AsyncClient, organizer: Account, city: str) -> tuple[str, str]:
    """An earlier and a later published event in ``city`` (default order: earlier first)."""
    location = {"name": "Hall", "latitude": 30.2, "longitude": -97.7, "city": city}
    first_start, second_start = soon(days=2), soon(days=4)
    first = await create_event(
        client,
        organizer,
        location=location,
        start_time=first_start.isoformat(),
        end_time=(first_start + timedelta(hours=2)).isoformat(),
    )
    second = await create_event(
        client,
        organizer,
        location=location,
        start_time=second_start.isoformat(),
        end_time=(second_start + timedelta(hours=2)).isoformat(),
    )
    return first, second


def unique_city() -> str:
    """A city no other test uses, so lists filtered by it hold only this test's events."""
    return f"Boostville {uuid.uuid4().hex[:8]}"


async def test_a_boosted_event_ranks_first_only_during_its_window(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    organizer = await make_organizer(make_account, db)
    viewer = await make_account()
    city = unique_city()
    first, second = await two_events(client, organizer, city)
    assert await listed(client, viewer, city=city) == [first, second]

    # Booked for later: scheduled, and the order does not change yet.
    later = datetime.now(UTC) + timedelta(hours=5)
    scheduled = await boost(
        client, organizer, f"/v1/events/{second}/boost", await make_card(GOOD_CARD), starts_at=later.isoformat()
    )
    assert scheduled.status_code == 201, scheduled.text
    assert scheduled.json()["boost_id"].startswith("boost_")
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["amount_cents"] == 2 * 200
    assert await listed(client, viewer, city=city) == [first, second]

    # Starting now (seed 000 field names): active, and the later event leads the list.
    now_boost = await client.post(
        f"/v1/events/{second}/boost",
        json={"duration_hours": 1, "boost_type": "discover_feed", "payment_method_id": await make_card(GOOD_CARD)},
        headers=organizer.headers,
    )
    assert now_boost.status_code == 201, now_boost.text
    assert now_boost.json()["status"] == "active"
    assert await listed(client, viewer, city=city) == [second, first]
    # A discover_feed boost does not lift the event in search (a query uses the search placement).
    assert await listed(client, viewer, city=city, q="Sunset") == [first, second]
    # Cursor pages keep the boosted event first and list each event once.
    page1 = (await client.get("/v1/events", params={"city": city, "limit": 1}, headers=viewer.headers)).json()
    assert [e["id"] for e in page1["items"]] == [second]
    page2 = (
        await client.get(
            "/v1/events", params={"city": city, "limit": 1, "cursor": page1["next_cursor"]}, headers=viewer.headers
        )
    ).json()
    assert [e["id"] for e in page2["items"]] == [first]

    boost_id = now_boost.json()["boost_id"]
    shown = await client.get(f"/v1/boosts/{boost_id}", headers=organizer.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "active"
    assert shown.json()["event_id"] == second

    # The SQL helper other queries use, at frozen instants around the one-hour window.
    row = uuid_of(ids.Prefix.BOOST, boost_id)
    async with db() as session:
        stored = await session.get(Boost, row)
        assert stored is not None
        for at, expected in (
            (stored.starts_at - timedelta(minutes=1), False),
            (stored.starts_at + timedelta(minutes=30), True),
            (stored.ends_at, False),
        ):
            boosted = await session.scalar(
                select(boosted_event_filter(at)).select_from(Event).where(Event.id == uuid_of(ids.Prefix.EVENT, second))
            )
            assert boosted is expected, at

    # An hour and a half passes for this boost (its window is moved back): it expires and the order returns.
    async with db.begin() as session:
        await session.execute(
            update(Boost)
            .where(Boost.id == row)
            .values(starts_at=Boost.starts_at - timedelta(hours=2), ends_at=Boost.ends_at - timedelta(hours=2))
        )
    assert await listed(client, viewer, city=city) == [first, second]
    assert (await client.get(f"/v1/boosts/{boost_id}", headers=organizer.headers)).json()["status"] == "expired"


async def test_refresh_boosts_moves_the_stored_status_with_the_clock(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
    engine_env: dict[str, str],
) -> None:
    organizer = await make_organizer(make_account, db)
    event = await create_event(client, organizer)
    start = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    bought = await boost(
        client, organizer, f"/v1/events/{event}/boost", await make_card(GOOD_CARD), starts_at=start.isoformat()
    )
    assert bought.status_code == 201, bought.text
    row = uuid_of(ids.Prefix.BOOST, bought.json()["boost_id"])

    async def stored_status() -> str:
        async with db() as session:
            value = await session.scalar(select(Boost.status).where(Boost.id == row))
        assert value is not None
        return value

    assert await stored_status() == "scheduled"
    await run_startup_crons(engine_env, start + timedelta(minutes=10))
    assert await stored_status() == "active"
    await run_startup_crons(engine_env, start + timedelta(hours=2, minutes=1))
    assert await stored_status() == "expired"


async def test_bad_boost_input_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    organizer = await make_organizer(make_account, db)
    event = await create_event(client, organizer)
    pm = await make_card(GOOD_CARD)
    path = f"/v1/events/{event}/boost"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    for body, field in (
        ({"hours": 0}, "hours"),
        ({"hours": 100_000}, "hours"),
        ({"placement": "billboard"}, "placement"),
        ({"starts_at": past}, "starts_at"),
        ({"starts_at": far}, "starts_at"),
        ({"payment_method_id": " "}, "payment_method_id"),
        ({"hours": 2, "duration_hours": 3}, "hours"),
    ):
        response = await boost(client, organizer, path, pm, **body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, response.text
    unknown_field = await boost(client, organizer, path, pm, colour="gold")
    assert unknown_field.status_code in (400, 422), unknown_field.text
    unknown_pm = await boost(client, organizer, path, "pm_doesnotexist")
    assert unknown_pm.status_code == 422, unknown_pm.text
    assert unknown_pm.json()["code"] == "invalid_payment_method"
    for card in (DECLINED_CARD, CHARGE_DECLINED_CARD):
        declined = await boost(client, organizer, path, await make_card(card))
        assert declined.status_code == 402, declined.text
        assert declined.json()["code"] == "payment_failed"
    assert await boost_count(db, event) == 0
    assert (await client.post(path, json={"hours": 1, "payment_method_id": pm})).status_code == 401


async def test_other_users_ids_are_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    organizer = await make_organizer(make_account, db)
    stranger = await make_account()
    event = await create_event(client, organizer)
    draft = await create_event(client, organizer, publish=False)
    pm = await make_card(GOOD_CARD)

    not_mine = await boost(client, stranger, f"/v1/events/{event}/boost", pm)
    assert not_mine.status_code == 403, not_mine.text
    assert not_mine.json()["code"] == "not_organizer"
    assert (await boost(client, stranger, f"/v1/events/{draft}/boost", pm)).status_code == 404
    own_draft = await boost(client, organizer, f"/v1/events/{draft}/boost", pm)
    assert own_draft.status_code == 409, own_draft.text
    assert own_draft.json()["code"] == "event_not_boostable"
    missing = ids.encode(ids.Prefix.EVENT, uuid.uuid4())
    assert (await boost(client, organizer, f"/v1/events/{missing}/boost", pm)).status_code == 404
    assert (await boost(client, organizer, "/v1/events/not-an-id/boost", pm)).status_code == 404
    someone_else = await boost(client, stranger, f"/v1/users/{organizer.id}/boost", pm)
    assert someone_else.status_code == 403, someone_else.text
    assert await boost_count(db, event) == 0

    mine = await boost(client, organizer, f"/v1/events/{event}/boost", pm)
    assert mine.status_code == 201, mine.text
    boost_id = mine.json()["boost_id"]
    assert (await client.get(f"/v1/boosts/{boost_id}", headers=stranger.headers)).status_code == 404
    assert (await client.get("/v1/boosts/boost_nope", headers=organizer.headers)).status_code == 404


async def test_concurrent_overlapping_boosts_sell_the_window_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    organizer = await make_organizer(make_account, db)
    event = await create_event(client, organizer)
    cards = [await make_card(GOOD_CARD) for _ in range(5)]
    responses = await asyncio.gather(
        *(boost(client, organizer, f"/v1/events/{event}/boost", pm, hours=3) for pm in cards)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409, 409], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"boost_overlaps"}
    assert await boost_count(db, event) == 1
    # Exactly one charge was booked, and its legs balance.
    winner = next(r for r in responses if r.status_code == 201)
    async with db() as session:
        pi = await session.scalar(
            select(Boost.stripe_payment_intent_id).where(
                Boost.id == uuid_of(ids.Prefix.BOOST, winner.json()["boost_id"])
            )
        )
        legs = list(await session.scalars(select(LedgerEntry.amount_cents).where(LedgerEntry.source_ref == pi)))
    assert sorted(legs) == [-600, 600]
    # The other placement is a separate slot.
    search = await boost(client, organizer, f"/v1/events/{event}/boost", cards[0], placement="search")
    assert search.status_code == 201, search.text


async def test_idempotency_key_replays_the_first_purchase(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    organizer = await make_organizer(make_account, db)
    event = await create_event(client, organizer)
    pm = await make_card(GOOD_CARD)
    key = {"Idempotency-Key": f"boost-{uuid.uuid4()}"}
    first = await boost(client, organizer, f"/v1/events/{event}/boost", pm, headers=key)
    again = await boost(client, organizer, f"/v1/events/{event}/boost", pm, headers=key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["boost_id"] == first.json()["boost_id"]
    assert again.headers.get("idempotent-replayed") == "true"
    other_body = await boost(client, organizer, f"/v1/events/{event}/boost", pm, headers=key, hours=5)
    assert other_body.status_code == 422, other_body.text
    assert other_body.json()["code"] == "idempotency_key_mismatch"
    assert await boost_count(db, event) == 1
    announced = await outbox_events(db, "boost.purchased", event_id=uuid_of_str(ids.Prefix.EVENT, event))
    assert [e["boost_id"] for e in announced] == [uuid_of_str(ids.Prefix.BOOST, first.json()["boost_id"])]
    history = await client.get("/v1/payments", headers=organizer.headers)
    assert [p["amount_cents"] for p in history.json()["items"]] == [400]


async def test_profile_boost_leads_user_search_and_sponsored_events_top_the_home_feed(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    make_card: MakeCard,
    db: async_sessionmaker[AsyncSession],
) -> None:
    tag = uuid.uuid4().hex[:6]
    plain = await make_account(display_name=f"Zed Quill{tag}")
    boosted = await make_account(display_name=f"Zed Quill{tag} Two")
    viewer = await make_account()

    async def user_hits() -> list[str]:
        response = await client.get("/v1/search", params={"q": f"Quill{tag}", "type": "users"}, headers=viewer.headers)
        assert response.status_code == 200, response.text
        return [h["id"] for h in response.json()["items"]]

    assert (await user_hits())[0] == plain.id
    bought = await boost(
        client, boosted, f"/v1/users/{boosted.id}/boost", await make_card(GOOD_CARD), placement="search"
    )
    assert bought.status_code == 201, bought.text
    assert bought.json()["user_id"] == boosted.id
    assert (await user_hits())[0] == boosted.id

    organizer = await make_organizer(make_account, db)
    city = unique_city()
    event, _ = await two_events(client, organizer, city)
    assert (await boost(client, organizer, f"/v1/events/{event}/boost", await make_card(GOOD_CARD))).status_code == 201
    local = await make_account()
    assert (await client.patch(f"/v1/users/{local.id}", json={"city": city}, headers=local.headers)).status_code == 200
    feed = await client.get("/v1/feed", headers=local.headers)
    assert feed.status_code == 200, feed.text
    top = feed.json()["items"][0]
    assert (top["id"], top["type"], top["sponsored"]) == (event, "event", True)
    # Someone elsewhere is not shown this city's sponsored event.
    away = await client.get("/v1/feed", headers=viewer.headers)
    assert event not in [i["id"] for i in away.json()["items"]]
