"""Club images: uploads for a club by its owners and admins, attached as avatar or cover through PATCH /v1/clubs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import Club
from tests.api.club_support import add_member, create_club
from tests.api.conftest import Account, MakeAccount
from tests.api.media_support import media_row, png, request_upload, upload, wait_status

pytestmark = pytest.mark.usefixtures("worker")

Sessions = async_sessionmaker[AsyncSession]


async def club_photo(client: httpx.AsyncClient, account: Account, club_id: str) -> str:
    """A ready photo uploaded for ``club_id`` by ``account``."""
    media_id, done = await upload(client, account, png(), "image/png", purpose="club", target_id=club_id)
    assert done == {"status": "processing"}
    assert (await wait_status(client, account, media_id, "ready", "failed"))["status"] == "ready"
    return media_id


async def club_row(db: Sessions, club_id: str) -> Club:
    """The stored club."""
    async with db() as session:
        club = await session.get(Club, ids.decode(ids.Prefix.CLUB, club_id))
    assert club is not None
    return club


async def patch_club(client: httpx.AsyncClient, account: Account, club_id: str, body: dict[str, Any]) -> httpx.Response:
    """PATCH /v1/clubs/{id}."""
    return await client.patch(f"/v1/clubs/{club_id}", json=body, headers=account.headers)


async def test_only_owners_and_admins_upload_club_images(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    owner, admin, member, outsider = [await make_account() for _ in range(4)]
    club = await create_club(client, owner)
    secret = await create_club(client, owner, privacy_level="secret")
    await add_member(client, club, owner, admin, role="admin")
    await add_member(client, club, owner, member)

    media_id = await club_photo(client, owner, club["id"])
    row = await media_row(db, media_id)
    assert row is not None
    assert row.object_key == f"club-media/{club['id']}/{media_id}/original"
    assert (await club_photo(client, admin, club["id"])).startswith("med_")

    body = {"type": "photo", "content_type": "image/png", "file_name": "a.png", "size_bytes": 100, "purpose": "club"}
    as_member = await client.post("/v1/media", json={**body, "target_id": club["id"]}, headers=member.headers)
    assert as_member.status_code == 403
    assert as_member.json()["code"] == "not_club_admin"
    hidden = await client.post("/v1/media", json={**body, "target_id": secret["id"]}, headers=outsider.headers)
    assert hidden.status_code == 404
    nowhere = ids.encode(ids.Prefix.CLUB, ids.uuid7())
    assert (
        await client.post("/v1/media", json={**body, "target_id": nowhere}, headers=owner.headers)
    ).status_code == 404
    for bad in ({**body}, {**body, "target_id": "evt_123"}):
        refused = await client.post("/v1/media", json=bad, headers=owner.headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_avatar_and_cover_take_owned_ready_club_media(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    owner, admin, member = [await make_account() for _ in range(3)]
    club = await create_club(client, owner)
    other_club = await create_club(client, owner)
    await add_member(client, club, owner, admin, role="admin")
    await add_member(client, club, owner, member)
    avatar = await club_photo(client, owner, club["id"])
    cover = await club_photo(client, owner, club["id"])

    changed = await patch_club(client, owner, club["id"], {"avatar_media_id": avatar, "cover_media_id": cover})
    assert changed.status_code == 200, changed.text
    assert changed.json()["avatar_url"].endswith(f"/v1/media/{avatar}/content/w256")
    assert changed.json()["cover_url"].endswith(f"/v1/media/{cover}/content/w1024")
    stored = await club_row(db, club["id"])
    assert (stored.avatar_media_id, stored.cover_media_id) == (
        ids.decode(ids.Prefix.MEDIA, avatar),
        ids.decode(ids.Prefix.MEDIA, cover),
    )
    # A club's image is public once in use: the stable URL redirects to the object without auth.
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as anonymous:
        shown = await anonymous.get(changed.json()["avatar_url"])
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "image/webp"

    # Not ready: a requested upload that never arrived.
    pending = await request_upload(client, owner, png(), "image/png", purpose="club", target_id=club["id"])
    not_ready = await patch_club(client, owner, club["id"], {"avatar_media_id": pending["media_id"]})
    assert not_ready.status_code == 422
    assert not_ready.json()["code"] == "media_not_ready"
    # Someone else's upload (the admin's, for this very club) is not the caller's: 404.
    admins = await club_photo(client, admin, club["id"])
    theirs = await patch_club(client, owner, club["id"], {"cover_media_id": admins})
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "media_not_found"
    # An upload for another club, or for a post, is refused.
    elsewhere = await club_photo(client, owner, other_club["id"])
    mismatch = await patch_club(client, owner, club["id"], {"avatar_media_id": elsewhere})
    assert mismatch.status_code == 422
    assert mismatch.json()["code"] == "media_purpose_mismatch"
    post_media, _ = await upload(client, owner, png(), "image/png")
    await wait_status(client, owner, post_media, "ready")
    assert (await patch_club(client, owner, club["id"], {"avatar_media_id": post_media})).status_code == 422
    # Members cannot change the images; bad ids and both forms at once are refused.
    refused = await patch_club(client, member, club["id"], {"avatar_media_id": avatar})
    assert refused.status_code == 403
    assert (await patch_club(client, owner, club["id"], {"avatar_media_id": "usr_1"})).status_code == 422
    both = await patch_club(
        client, owner, club["id"], {"avatar_media_id": avatar, "avatar_url": "https://example.com/a.png"}
    )
    assert both.status_code == 422
    after = await club_row(db, club["id"])
    assert (after.avatar_url, after.cover_url) == (stored.avatar_url, stored.cover_url)

    # The admin replaces the cover with their own upload: the old one is detached (and private again).
    replaced = await patch_club(client, admin, club["id"], {"cover_media_id": admins})
    assert replaced.status_code == 200, replaced.text
    old_cover = await media_row(db, cover)
    assert old_cover is not None
    assert old_cover.attached_to_id is None
    async with httpx.AsyncClient(timeout=30) as anonymous:
        assert (await anonymous.get(changed.json()["cover_url"])).status_code == 404
    # An external URL frees the uploaded avatar; null clears the cover.
    external = await patch_club(
        client, owner, club["id"], {"avatar_url": "https://example.com/a.png", "cover_media_id": None}
    )
    assert external.status_code == 200, external.text
    assert (external.json()["avatar_url"], external.json()["cover_url"]) == ("https://example.com/a.png", None)
    final = await club_row(db, club["id"])
    assert (final.avatar_media_id, final.cover_media_id) == (None, None)
    for media_id in (avatar, admins):
        row = await media_row(db, media_id)
        assert row is not None
        assert row.attached_to_id is None

    # Deleting an image in use takes it off the club.
    await patch_club(client, owner, club["id"], {"avatar_media_id": avatar})
    assert (await client.delete(f"/v1/media/{avatar}", headers=owner.headers)).status_code == 204
    assert (await club_row(db, club["id"])).avatar_url is None


async def test_concurrent_avatar_changes_leave_one_attached(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    owner = await make_account()
    club = await create_club(client, owner)
    photos = [await club_photo(client, owner, club["id"]) for _ in range(4)]
    results = await asyncio.gather(
        *(patch_club(client, owner, club["id"], {"avatar_media_id": media_id}) for media_id in photos)
    )
    assert [r.status_code for r in results] == [200] * 4
    shown = await club_row(db, club["id"])
    assert shown.avatar_media_id is not None
    attached = []
    for media_id in photos:
        row = await media_row(db, media_id)
        assert row is not None
        if row.attached_to_id is not None:
            attached.append(row.id)
    assert attached == [shown.avatar_media_id]
