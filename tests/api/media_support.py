"""Real uploads for tests: request a slot, upload to SeaweedFS, complete, wait for the worker."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.media.models import Media
from shared.errors import NotFound
from shared.storage import Storage
from tests.api.conftest import Account


def png(width: int = 300, height: int = 200) -> bytes:
    """A small PNG."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 20, 30, 128)).save(out, format="PNG")
    return out.getvalue()


async def request_upload(
    client: httpx.AsyncClient, account: Account, data: bytes, content_type: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "type": "photo",
        "content_type": content_type,
        "file_name": "file.bin",
        "size_bytes": len(data),
        "purpose": "post",
        **fields,
    }
    response = await client.post("/v1/media", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def post_form(ticket: dict[str, Any], data: bytes, content_type: str) -> httpx.Response:
    """Upload through the presigned POST, as a browser form would."""
    async with httpx.AsyncClient(timeout=30) as s3:
        return await s3.post(
            ticket["upload"]["url"], data=ticket["upload"]["fields"], files={"file": ("f", data, content_type)}
        )


async def put_url(url: str, data: bytes, content_type: str) -> httpx.Response:
    """Upload through the presigned PUT."""
    async with httpx.AsyncClient(timeout=30) as s3:
        return await s3.put(url, content=data, headers={"Content-Type": content_type})


async def upload(
    client: httpx.AsyncClient, account: Account, data: bytes, content_type: str, **fields: Any
) -> tuple[str, dict[str, Any]]:
    """Request, upload by POST and complete; the media id and the complete answer."""
    ticket = await request_upload(client, account, data, content_type, **fields)
    stored = await post_form(ticket, data, content_type)
    assert stored.status_code == 204, stored.text
    done = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=account.headers)
    assert done.status_code == 200, done.text
    return str(ticket["media_id"]), done.json()


async def wait_status(client: httpx.AsyncClient, account: Account, media_id: str, *statuses: str) -> dict[str, Any]:
    """Poll the media until it reaches one of ``statuses`` (the worker processes it)."""
    async with asyncio.timeout(20):
        while True:
            response = await client.get(f"/v1/media/{media_id}", headers=account.headers)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.05)


async def ready_photo(client: httpx.AsyncClient, account: Account, **fields: Any) -> str:
    media_id, done = await upload(client, account, png(), "image/png", **fields)
    assert done == {"status": "processing"}
    await wait_status(client, account, media_id, "ready")
    return media_id


async def object_exists(storage: Storage, key: str) -> bool:
    try:
        await storage.head(key)
    except NotFound:
        return False
    return True


async def media_row(db: async_sessionmaker[AsyncSession], media_id: str) -> Media | None:
    async with db() as session:
        return await session.get(Media, ids.decode(ids.Prefix.MEDIA, media_id))
