"""Media through real HTTP: the API, SeaweedFS over S3, and a real worker process; nothing mocked."""

from __future__ import annotations

import asyncio
import io
import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from PIL import ExifTags, Image
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.config import load_settings
from shared.domain.media.models import Media, MediaAuditEntry, ModerationCase, Purpose
from shared.domain.media.schemas import UploadRequest
from shared.domain.media.services import MediaService, TargetPolicy
from shared.domain.users.models import User
from shared.errors import Conflict, InvalidInput, NotFound
from shared.storage import Storage
from tests.api.conftest import Account, MakeAccount
from tests.api.media_support import (
    media_row,
    object_exists,
    png,
    post_form,
    put_url,
    ready_photo,
    request_upload,
    upload,
    wait_status,
)

pytestmark = pytest.mark.usefixtures("worker")


# Fixtures and helpers


@pytest.fixture(scope="module")
def storage(engine_env: dict[str, str]) -> Storage:
    """An S3 client on the session's SeaweedFS, like the API's."""
    return Storage(load_settings(engine_env))


@pytest.fixture
def media_service(engine_env: dict[str, str], db: async_sessionmaker[AsyncSession], storage: Storage) -> MediaService:
    """The media service in the test process, for the calls other features make."""
    return MediaService(load_settings(engine_env), db, db, storage)


def jpeg_with_gps(width: int = 1600, height: int = 1200) -> bytes:
    """A JPEG whose EXIF holds a camera model and a GPS position."""
    image = Image.new("RGB", (width, height), (200, 80, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "SecretCam 9000"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (30.0, 17.0, 6.0),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (97.0, 44.0, 6.0),
    }
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=80)
    return out.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A valid grayscale PNG of ``side``² pixels (400 M by default) that compresses to a few hundred KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (side + 1)  # filter byte + one byte per pixel
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def box(kind: bytes, payload: bytes) -> bytes:
    """An ISO-BMFF box."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(duration_s: int = 7, width: int = 640, height: int = 360) -> bytes:
    """A minimal MP4: ftyp, a large mdat first, then moov with mvhd (timescale 1000) and a video tkhd."""
    mvhd = bytes(4) + struct.pack(">IIII", 0, 0, 1000, duration_s * 1000) + bytes(80)
    tkhd = (
        bytes(4)
        + struct.pack(">IIIII", 0, 0, 1, 0, duration_s * 1000)
        + bytes(52)
        + struct.pack(">II", width << 16, height << 16)
    )
    return (
        box(b"ftyp", b"isom" + bytes(4) + b"isomiso2mp41")
        + box(b"mdat", bytes(200_000))
        + box(b"moov", box(b"mvhd", mvhd) + box(b"trak", box(b"tkhd", tkhd)))
    )


async def as_moderator(client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], account: Account) -> Account:
    """``account`` with the moderator role and a fresh token carrying it."""
    async with db.begin() as session:
        await session.execute(
            update(User).where(User.id == ids.decode(ids.Prefix.USER, account.id)).values(roles=["user", "moderator"])
        )
    login = await client.post("/v1/auth/login", json={"email": account.email, "password": account.password})
    assert login.status_code == 200, login.text
    account.access_token = login.json()["access_token"]
    return account


# Upload, verification and processing


async def test_post_upload_is_processed_into_variants_without_exif_or_gps(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    alice = await make_account()
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    ticket = await request_upload(client, alice, original, "image/jpeg")
    assert set(ticket) == {"media_id", "upload", "upload_url", "expires_at"}
    assert ticket["media_id"].startswith("med_")
    expires = datetime.fromisoformat(ticket["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    row = await media_row(db, ticket["media_id"])
    assert row is not None
    assert row.status == "pending"
    assert row.object_key == f"user-media/{alice.id}/posts/{ticket['media_id']}/original"
    assert ticket["upload"]["fields"]["key"] == row.object_key

    assert (await post_form(ticket, original, "image/jpeg")).status_code == 204
    done = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=alice.headers)
    assert done.status_code == 200
    assert done.json() == {"status": "processing"}

    media = await wait_status(client, alice, ticket["media_id"], "ready", "failed")
    assert media["status"] == "ready", media
    assert (media["width"], media["height"]) == (1600, 1200)
    assert media["size_bytes"] == len(original)
    assert media["preview_status"] == "ready"
    assert [v["name"] for v in media["variants"]] == ["w256", "w1024"]
    async with httpx.AsyncClient(timeout=30) as s3:
        for variant, side in zip(media["variants"], (256, 1024), strict=True):
            fetched = await s3.get(variant["url"])
            assert fetched.status_code == 200
            image = Image.open(io.BytesIO(fetched.content))
            assert image.format == "WEBP"
            assert max(image.size) == side
            assert not image.getexif()
            assert "exif" not in image.info
            assert "xmp" not in image.info
            assert b"SecretCam" not in fetched.content
            assert b"Exif" not in fetched.content
        # Photos are shown only through their stripped variants.
        assert media["url"] == media["variants"][-1]["url"]
    row = await media_row(db, ticket["media_id"])
    assert row is not None
    assert all([await object_exists(storage, key) for key in row.variants.values()])


async def test_put_upload_and_a_second_complete_is_idempotent(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    bob = await make_account()
    data = png()
    ticket = await request_upload(client, bob, data, "image/png")
    assert (await put_url(ticket["upload_url"], data, "image/png")).status_code == 200
    first = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=bob.headers)
    assert first.json() == {"status": "processing"}
    media = await wait_status(client, bob, ticket["media_id"], "ready")
    assert (media["width"], media["height"]) == (300, 200)
    again = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=bob.headers)
    assert again.status_code == 200
    assert again.json() == {"status": "ready"}


async def test_concurrent_completes_queue_processing_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    carol = await make_account()
    data = png()
    ticket = await request_upload(client, carol, data, "image/png")
    assert (await post_form(ticket, data, "image/png")).status_code == 204
    answers = await asyncio.gather(
        *(client.post(f"/v1/media/{ticket['media_id']}/complete", headers=carol.headers) for _ in range(6))
    )
    assert all(a.status_code == 200 for a in answers)
    assert {a.json()["status"] for a in answers} <= {"processing", "ready"}
    async with db() as session:
        events = await session.scalar(
            select(func.count())
            .select_from(bus.OutboxRow)
            .where(
                bus.OutboxRow.event_type == "media.uploaded",
                bus.OutboxRow.payload["media_id"].astext == str(ids.decode(ids.Prefix.MEDIA, ticket["media_id"])),
            )
        )
    assert events == 1


async def test_bytes_not_matching_the_declared_type_are_rejected_and_deleted(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    dave = await make_account()
    fake = b"%PDF-1.7\n" + b"x" * 500  # a PDF declared as a PNG
    media_id, done = await upload(client, dave, fake, "image/png")
    assert done["status"] == "rejected"
    assert "pdf" in done["reason"]
    assert "image/png" in done["reason"]
    row = await media_row(db, media_id)
    assert row is not None
    assert row.status == "rejected"
    assert not await object_exists(storage, row.object_key)
    media = await client.get(f"/v1/media/{media_id}", headers=dave.headers)
    assert media.json()["url"] is None
    assert media.json()["variants"] == []


async def test_complete_before_uploading_is_refused(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    erin = await make_account()
    ticket = await request_upload(client, erin, png(), "image/png")
    done = await client.post(f"/v1/media/{ticket['media_id']}/complete", headers=erin.headers)
    assert done.status_code == 422
    assert done.json()["code"] == "upload_missing"


async def test_the_policy_refuses_oversize_and_wrong_type_uploads(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    frank = await make_account()
    data = png()
    ticket = await request_upload(client, frank, data, "image/png")
    bigger = data + b"\0" * 1024
    over = await post_form(ticket, bigger, "image/png")
    assert over.status_code in (400, 403)
    assert b"EntityTooLarge" in over.content
    wrong_type = await post_form(
        {
            **ticket,
            "upload": {**ticket["upload"], "fields": {**ticket["upload"]["fields"], "Content-Type": "text/html"}},
        },
        data,
        "text/html",
    )
    assert wrong_type.status_code == 403
    # The PUT URL signs the declared length and type.
    assert (await put_url(ticket["upload_url"], bigger, "image/png")).status_code == 403
    assert (await put_url(ticket["upload_url"], data, "text/html")).status_code == 403


async def test_expired_upload_urls_are_refused(storage: Storage) -> None:
    key = f"user-media/test/posts/{uuid.uuid4().hex}/original"
    # Signed an hour ago with the longest expiry the service allows.
    with time_machine.travel(datetime.now(UTC) - timedelta(hours=1)):
        form = storage.presign_post(key, "image/png", 10_000, 600)
        put = storage.presign_put(key, "image/png", 3, 600)
    async with httpx.AsyncClient(timeout=30) as s3:
        posted = await s3.post(form.url, data=form.fields, files={"file": ("f", b"abc", "image/png")})
        assert posted.status_code == 403
        assert b"expired" in posted.content
        assert (await s3.put(put, content=b"abc", headers={"Content-Type": "image/png"})).status_code == 403
    assert not await object_exists(storage, key)


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"type": "photo", "content_type": "image/gif"}, "content_type", "image/jpeg"),
        ({"type": "photo", "size_bytes": 21 * 1024 * 1024}, "size_bytes", "20 MiB"),
        ({"type": "video", "content_type": "video/mp4", "size_bytes": 501 * 1024 * 1024}, "size_bytes", "500 MiB"),
        ({"type": "document", "content_type": "application/x-msdownload"}, "content_type", "application/pdf"),
        ({"purpose": "avatar", "type": "video", "content_type": "video/mp4"}, "type", "photo"),
        ({"purpose": "event"}, "target_id", "required"),
        ({"purpose": "event", "target_id": "usr_nope"}, "target_id", "evt_"),
        ({"target_id": "evt_00000000000000000000000000"}, "target_id", "no target"),
    ],
)
async def test_disallowed_uploads_are_422_naming_the_rule_and_store_nothing(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    field: str,
    needle: str,
) -> None:
    gina = await make_account()
    request = {"type": "photo", "content_type": "image/png", "file_name": "a", "size_bytes": 10, "purpose": "post"}
    response = await client.post("/v1/media", json={**request, **body}, headers=gina.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and needle in e["message"] for e in errors), errors
    async with db() as session:
        owned = await session.scalar(
            select(func.count()).select_from(Media).where(Media.owner_id == ids.decode(ids.Prefix.USER, gina.id))
        )
    assert owned == 0


async def test_unknown_fields_and_targets_the_owning_feature_refuses(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    hank = await make_account()
    request = {"type": "photo", "content_type": "image/png", "file_name": "a", "size_bytes": 10, "purpose": "post"}
    extra = await client.post("/v1/media", json={**request, "status": "ready"}, headers=hank.headers)
    assert extra.status_code == 422
    # The events feature registers its check: an unknown event is not found.
    event = await client.post(
        "/v1/media",
        json={**request, "purpose": "event", "target_id": ids.encode(ids.Prefix.EVENT, uuid.uuid4())},
        headers=hank.headers,
    )
    assert event.status_code == 404
    assert event.json()["code"] == "event_not_found"
    # The clubs feature registers its check too: an unknown club is not found.
    club = await client.post(
        "/v1/media",
        json={**request, "purpose": "club", "target_id": ids.encode(ids.Prefix.CLUB, uuid.uuid4())},
        headers=hank.headers,
    )
    assert club.status_code == 404
    assert club.json()["code"] == "club_not_found"
    assert (await client.post("/v1/media", json=request)).status_code == 401


async def test_a_decompression_bomb_fails_processing(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    ivy = await make_account()
    bomb = png_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    media_id, done = await upload(client, ivy, bomb, "image/png")
    assert done == {"status": "processing"}
    media = await wait_status(client, ivy, media_id, "failed", "ready")
    assert media["status"] == "failed"
    assert "pixel" in media["status_reason"]
    assert media["variants"] == []
    assert media["url"] is None


async def test_video_gets_duration_and_size_and_no_poster(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    jay = await make_account()
    data = mp4()
    media_id, done = await upload(client, jay, data, "video/mp4", type="video")
    assert done == {"status": "processing"}
    media = await wait_status(client, jay, media_id, "ready", "failed")
    assert media["status"] == "ready", media
    assert media["duration_ms"] == 7000
    assert (media["width"], media["height"]) == (640, 360)
    assert media["size_bytes"] == len(data)
    assert media["preview_status"] == "unavailable"
    assert media["variants"] == []
    async with httpx.AsyncClient(timeout=30) as s3:
        assert (await s3.get(media["url"])).content == data


# Ownership and attachment


async def test_another_users_media_is_not_found(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    kim, leo = await make_account(), await make_account()
    media_id = await ready_photo(client, kim)
    assert (await client.get(f"/v1/media/{media_id}", headers=leo.headers)).status_code == 404
    assert (await client.post(f"/v1/media/{media_id}/complete", headers=leo.headers)).status_code == 404
    assert (await client.delete(f"/v1/media/{media_id}", headers=leo.headers)).status_code == 404
    assert (await client.get("/v1/media/med_garbage", headers=leo.headers)).status_code == 404
    assert (await client.get(f"/v1/media/{media_id}", headers=kim.headers)).status_code == 200


async def test_avatar_from_an_upload(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    mia = await make_account()
    media_id = await ready_photo(client, mia, purpose="avatar")
    patched = await client.patch(f"/v1/users/{mia.id}", json={"avatar_media_id": media_id}, headers=mia.headers)
    assert patched.status_code == 200, patched.text
    profile = (await client.get(f"/v1/users/{mia.id}", headers=mia.headers)).json()
    assert profile["avatar_url"].endswith(f"/v1/media/{media_id}/content/w256")
    # The stable avatar URL needs no token and redirects to the stripped 256 px thumbnail.
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as anonymous:
        thumb = await anonymous.get(profile["avatar_url"])
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 171)
    assert (await client.get(f"/v1/media/{media_id}/content/original")).status_code == 404
    cleared = await client.patch(f"/v1/users/{mia.id}", json={"avatar_media_id": None}, headers=mia.headers)
    assert cleared.status_code == 200
    assert (await client.get("/v1/users/me", headers=mia.headers)).json()["avatar_url"] is None


async def test_avatar_attachment_refusals(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    nia, oscar = await make_account(), await make_account()
    theirs = await ready_photo(client, oscar, purpose="avatar")
    ticket = await request_upload(client, nia, png(), "image/png", purpose="avatar")
    post_photo = await ready_photo(client, nia)

    async def attach(value: object) -> httpx.Response:
        return await client.patch(f"/v1/users/{nia.id}", json={"avatar_media_id": value}, headers=nia.headers)

    someone_elses = await attach(theirs)
    assert someone_elses.status_code == 404
    assert someone_elses.json()["code"] == "media_not_found"
    unready = await attach(ticket["media_id"])
    assert unready.status_code == 422
    assert unready.json()["code"] == "media_not_ready"
    wrong_purpose = await attach(post_photo)
    assert wrong_purpose.status_code == 422
    assert wrong_purpose.json()["code"] == "media_purpose_mismatch"
    malformed = await attach("usr_123")
    assert malformed.status_code == 422
    both = await client.patch(
        f"/v1/users/{nia.id}",
        json={"avatar_media_id": theirs, "avatar_url": "https://example.com/a.png"},
        headers=nia.headers,
    )
    assert both.status_code == 422
    assert (await client.get("/v1/users/me", headers=nia.headers)).json()["avatar_url"] is None


async def test_claim_for_attachment_rules(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    media_service: MediaService,
) -> None:
    pat = await make_account()
    owner = ids.decode(ids.Prefix.USER, pat.id)
    first = ids.decode(ids.Prefix.MEDIA, await ready_photo(client, pat))
    second = ids.decode(ids.Prefix.MEDIA, await ready_photo(client, pat))
    post_a, post_b = uuid.uuid4(), uuid.uuid4()
    async with db.begin() as session:
        claimed = await media_service.claim_for_attachment(session, owner, [second, first], Purpose.POST, post_a)
        assert [m.id for m in claimed] == [second, first]
    async with db.begin() as session:
        # Attaching to the same target again is a no-op.
        await media_service.claim_for_attachment(session, owner, [first], Purpose.POST, post_a)
    with pytest.raises(Conflict) as taken:
        async with db.begin() as session:
            await media_service.claim_for_attachment(session, owner, [first], Purpose.POST, post_b)
    assert taken.value.code == "media_already_attached"
    with pytest.raises(InvalidInput) as mismatch:
        async with db.begin() as session:
            await media_service.claim_for_attachment(session, owner, [first], Purpose.MESSAGE, post_b)
    assert mismatch.value.code == "media_purpose_mismatch"
    with pytest.raises(NotFound):
        async with db.begin() as session:
            await media_service.claim_for_attachment(session, uuid.uuid4(), [first], Purpose.POST, post_b)


async def test_event_uploads_through_a_feature_check_and_review(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    media_service: MediaService,
) -> None:
    quinn = await make_account()
    rex = await as_moderator(client, db, await make_account())
    event_id = uuid.uuid4()
    calls: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def organizers_only(session: AsyncSession, caller_id: uuid.UUID, target_id: uuid.UUID) -> TargetPolicy:
        calls.append((caller_id, target_id))
        return TargetPolicy(requires_review=True)

    me = (await client.get("/v1/users/me", headers=quinn.headers)).json()
    claims = _claims(ids.decode(ids.Prefix.USER, me["id"]))
    data = png()
    request = UploadRequest(
        type="photo",
        content_type="image/png",
        file_name="stage.png",
        size_bytes=len(data),
        purpose="event",
        target_id=ids.encode(ids.Prefix.EVENT, event_id),
    )
    ticket = await media_service.create_upload(claims, request, target_check=organizers_only)
    assert calls == [(claims.user_id, event_id)]
    row = await media_row(db, ticket.media_id)
    assert row is not None
    assert row.object_key == f"event-media/{ids.encode(ids.Prefix.EVENT, event_id)}/{ticket.media_id}/original"
    assert (await put_url(ticket.upload_url, data, "image/png")).status_code == 200
    done = await client.post(f"/v1/media/{ticket.media_id}/complete", headers=quinn.headers)
    assert done.json() == {"status": "processing"}
    await wait_status(client, quinn, ticket.media_id, "pending_review")

    # Under review it cannot be attached, and it is in the moderators' queue.
    with pytest.raises(InvalidInput) as unready:
        async with db.begin() as session:
            await media_service.claim_for_attachment(session, claims.user_id, [row.id], Purpose.EVENT, event_id)
    assert unready.value.code == "media_not_ready"
    assert ticket.media_id in await queue_ids(client, rex)
    approved = await client.post(f"/v1/moderation/media/{ticket.media_id}/approve", headers=rex.headers)
    assert approved.status_code == 200
    assert approved.json()["status"] == "ready"
    assert ticket.media_id not in await queue_ids(client, rex)
    async with db.begin() as session:
        [attached] = await media_service.claim_for_attachment(
            session, claims.user_id, [row.id], Purpose.EVENT, event_id
        )
    assert attached.attached_to_id == event_id
    with pytest.raises(InvalidInput) as other_event:
        async with db.begin() as session:
            await media_service.claim_for_attachment(session, claims.user_id, [row.id], Purpose.EVENT, uuid.uuid4())
    assert other_event.value.code == "media_purpose_mismatch"


def _claims(user_id: uuid.UUID) -> Any:
    from shared.domain.auth.tokens import AccessClaims

    return AccessClaims(user_id=user_id, session_id=uuid.uuid4(), roles=("user",), expires_at=0)


async def queue_ids(client: httpx.AsyncClient, moderator: Account) -> list[str]:
    """Every media id in the moderation queue, following cursors."""
    return list(await queue_items(client, moderator))


async def queue_items(client: httpx.AsyncClient, moderator: Account) -> dict[str, dict[str, Any]]:
    """Every item in the moderation queue by media id, following cursors."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/moderation/media", params=params, headers=moderator.headers)
        assert page.status_code == 200, page.text
        found |= {item["media"]["id"]: item for item in page.json()["items"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


# Moderation


async def test_reports_and_moderator_rejection(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    sam, tia = await make_account(), await make_account()
    mod = await as_moderator(client, db, await make_account())
    media_id = await ready_photo(client, sam, purpose="avatar")
    assert (
        await client.patch(f"/v1/users/{sam.id}", json={"avatar_media_id": media_id}, headers=sam.headers)
    ).status_code == 200
    row = await media_row(db, media_id)
    assert row is not None
    keys = [row.object_key, *row.variants.values()]

    assert (await client.post(f"/v1/media/{media_id}/report", json={}, headers=tia.headers)).status_code == 422
    own = await client.post(f"/v1/media/{media_id}/report", json={"reason": "mine"}, headers=sam.headers)
    assert own.status_code == 422
    reported = await client.post(f"/v1/media/{media_id}/report", json={"reason": "offensive"}, headers=tia.headers)
    assert reported.status_code == 201
    assert reported.json()["case_id"].startswith("mcase_")
    again = await client.post(f"/v1/media/{media_id}/report", json={"reason": "still"}, headers=tia.headers)
    assert again.json()["case_id"] == reported.json()["case_id"]

    assert (await client.get("/v1/moderation/media", headers=tia.headers)).status_code == 403
    assert (await client.post(f"/v1/moderation/media/{media_id}/reject", headers=tia.headers)).status_code == 403
    queued = (await queue_items(client, mod))[media_id]
    assert queued["open_reports"] == 1
    assert queued["report_reasons"] == ["offensive"]
    assert queued["media"]["owner_id"] == sam.id

    rejected = await client.post(
        f"/v1/moderation/media/{media_id}/reject", json={"reason": "hate symbol"}, headers=mod.headers
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert media_id not in await queue_ids(client, mod)
    # Gone from every read: the avatar, the public URL, the owner's view and the objects.
    assert (await client.get(f"/v1/users/{sam.id}", headers=tia.headers)).json()["avatar_url"] is None
    assert (await client.get(f"/v1/media/{media_id}/content/w256")).status_code == 404
    owner_view = (await client.get(f"/v1/media/{media_id}", headers=sam.headers)).json()
    assert owner_view["status"] == "rejected"
    assert owner_view["url"] is None
    assert owner_view["variants"] == []
    assert owner_view["status_reason"] == "hate symbol"
    async with asyncio.timeout(15):
        while any([await object_exists(storage, k) for k in keys]):
            await asyncio.sleep(0.1)
    again_reject = await client.post(f"/v1/moderation/media/{media_id}/approve", headers=mod.headers)
    assert again_reject.status_code == 409

    async with db() as session:
        entries = list(
            await session.scalars(
                select(MediaAuditEntry).where(MediaAuditEntry.media_id == ids.decode(ids.Prefix.MEDIA, media_id))
            )
        )
        cases = list(
            await session.scalars(
                select(ModerationCase.status).where(ModerationCase.media_id == ids.decode(ids.Prefix.MEDIA, media_id))
            )
        )
    assert [(e.action, e.previous_status, e.reason) for e in entries] == [("reject", "ready", "hate symbol")]
    assert entries[0].moderator_id == ids.decode(ids.Prefix.USER, mod.id)
    assert cases == ["resolved"]
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as session:
            await session.execute(text("UPDATE media_audit_log SET reason = 'edited'"))


# Lifecycle


async def test_owner_delete_removes_row_and_objects(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    uma = await make_account()
    media_id = await ready_photo(client, uma)
    row = await media_row(db, media_id)
    assert row is not None
    keys = [row.object_key, *row.variants.values()]
    assert (await client.delete(f"/v1/media/{media_id}", headers=uma.headers)).status_code == 204
    assert (await client.get(f"/v1/media/{media_id}", headers=uma.headers)).status_code == 404
    assert (await client.delete(f"/v1/media/{media_id}", headers=uma.headers)).status_code == 404
    async with asyncio.timeout(15):
        while any([await object_exists(storage, k) for k in keys]) or await media_row(db, media_id) is not None:
            await asyncio.sleep(0.1)


async def test_the_sweep_removes_uploads_abandoned_for_a_day(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: async_sessionmaker[AsyncSession],
    storage: Storage,
    media_service: MediaService,
) -> None:
    vic = await make_account()
    data = png()
    old = await request_upload(client, vic, data, "image/png")
    assert (await post_form(old, data, "image/png")).status_code == 204  # uploaded, never completed
    fresh = await request_upload(client, vic, data, "image/png")
    old_row = await media_row(db, old["media_id"])
    assert old_row is not None
    async with db.begin() as session:
        await session.execute(
            update(Media).where(Media.id == old_row.id).values(created_at=func.now() - timedelta(hours=24, minutes=1))
        )
    assert await media_service.sweep_abandoned() >= 1
    assert await media_row(db, old["media_id"]) is None
    assert not await object_exists(storage, old_row.object_key)
    assert (await media_row(db, fresh["media_id"])) is not None
    assert (await client.get(f"/v1/media/{old['media_id']}", headers=vic.headers)).status_code == 404
