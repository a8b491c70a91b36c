"""Event media through real HTTP: upload slots for organizers and confirmed attendees, real PUTs to SeaweedFS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.media.models import Media
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, detail, make_organizer, rsvp
from tests.api.media_support import png, put_url, wait_status
from tests.api.social.helpers import problem

pytestmark = pytest.mark.usefixtures("worker")


async def slot(client: httpx.AsyncClient, event_id: str, user: Account, **fields: Any) -> httpx.Response:
    """Ask for an event media upload slot."""
    body = {"type": "photo", "content_type": "image/png", "file_name": "crowd.png", **fields}
    return await client.post(f"/v1/events/{event_id}/media", json=body, headers=user.headers)


async def upload_to_event(client: httpx.AsyncClient, event_id: str, user: Account) -> str:
    """Upload a PNG through the presigned PUT, complete it and wait until it is ready; its id."""
    data = png()
    response = await slot(client, event_id, user, size_bytes=len(data))
    assert response.status_code == 200, response.text
    ticket = response.json()
    stored = await put_url(ticket["upload_url"], data, "image/png")
    assert stored.status_code == 200, stored.text
    done = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=user.headers)
    assert done.json() == {"status": "processing"}, done.text
    await wait_status(client, user, ticket["media_id"], "ready")
    media_id: str = ticket["media_id"]
    return media_id


async def media_rows(db: async_sessionmaker[AsyncSession], user: Account) -> int:
    """How many media rows ``user`` owns."""
    async with db() as session:
        query = select(func.count()).select_from(Media).where(Media.owner_id == ids.decode(ids.Prefix.USER, user.id))
        return int(await session.scalar(query) or 0)


async def test_organizers_and_confirmed_attendees_fill_the_events_media(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    attendee, viewer = await make_account(), await make_account()
    event_id = await create_event(client, organizer)
    assert (await rsvp(client, event_id, attendee))["status"] == "confirmed"

    seed_shape = await slot(client, event_id, organizer)
    assert seed_shape.status_code == 200, seed_shape.text
    assert {"upload_url", "media_id", "expires_at"} <= set(seed_shape.json())
    async with db() as session:
        row = await session.get(Media, ids.decode(ids.Prefix.MEDIA, seed_shape.json()["media_id"]))
    assert row is not None
    assert row.object_key.startswith(f"event-media/{event_id}/")
    assert (row.purpose, row.target_id) == ("event", ids.decode(ids.Prefix.EVENT, event_id))

    by_organizer = await upload_to_event(client, event_id, organizer)
    by_attendee = await upload_to_event(client, event_id, attendee)
    seen = await detail(client, event_id, viewer)
    # The seed-shape slot was never uploaded: it is not ready and does not show.
    assert [m["id"] for m in seen["media"]] == [by_organizer, by_attendee]
    for item in seen["media"]:
        assert item["url"]
        async with httpx.AsyncClient(timeout=10) as cdn:
            assert (await cdn.get(item["url"])).status_code == 200


async def test_event_media_refusals_store_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    organizer = await make_organizer(make_account, db)
    outsider, maybe = await make_account(), await make_account()
    event_id = await create_event(client, organizer)
    draft_id = await create_event(client, organizer, publish=False)
    await rsvp(client, event_id, maybe, status="maybe")

    problem(await slot(client, event_id, outsider), 403, "not_attendee")
    problem(await slot(client, event_id, maybe), 403, "not_attendee")
    problem(await slot(client, draft_id, outsider), 404, "event_not_found")
    problem(await slot(client, ids.encode(ids.Prefix.EVENT, ids.uuid7()), outsider), 404)
    problem(await slot(client, "evt_nope", outsider), 404)
    problem(await slot(client, event_id, organizer, purpose="post"), 422)
    problem(await slot(client, event_id, organizer, content_type="text/html"), 422)
    problem(await slot(client, event_id, organizer, size_bytes=10**10), 422, "media_too_large")
    assert await media_rows(db, outsider) == 0
    assert await media_rows(db, maybe) == 0
    assert await media_rows(db, organizer) == 0
