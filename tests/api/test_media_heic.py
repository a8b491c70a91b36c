"""HEIC (iPhone) photos are decoded with pillow-heif: thumbnails are made and their metadata is gone."""

from __future__ import annotations

import io

import httpx
import pillow_heif
from PIL import ExifTags, Image

from tests.api.conftest import MakeAccount
from tests.api.media_support import upload, wait_status


def heic_with_gps(width: int = 640, height: int = 480) -> bytes:
    """A real HEIC made by pillow-heif itself, whose EXIF holds a camera model and a GPS position."""
    pillow_heif.register_heif_opener()
    image = Image.new("RGB", (width, height), (30, 120, 200))
    image.paste((250, 200, 40), (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "SecretPhone 15"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (48.0, 51.0, 24.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (2.0, 21.0, 3.0),
    }
    out = io.BytesIO()
    image.save(out, format="HEIF", quality=70, exif=exif.tobytes())
    return out.getvalue()


async def test_heic_upload_gets_webp_thumbnails_without_exif(
    client: httpx.AsyncClient, make_account: MakeAccount, worker: None
) -> None:
    user = await make_account()
    original = heic_with_gps()
    assert original[4:12] == b"ftypheic"
    assert Image.open(io.BytesIO(original)).getexif().get(ExifTags.Base.Model) == "SecretPhone 15"

    media_id, done = await upload(client, user, original, "image/heic", file_name="IMG_0001.HEIC")
    assert done == {"status": "processing"}
    media = await wait_status(client, user, media_id, "ready", "failed")
    assert media["status"] == "ready", media
    assert (media["width"], media["height"]) == (640, 480)
    assert media["preview_status"] == "ready"
    assert [v["name"] for v in media["variants"]] == ["w256", "w1024"]
    async with httpx.AsyncClient(timeout=30) as s3:
        for variant, size in zip(media["variants"], ((256, 192), (640, 480)), strict=True):
            fetched = await s3.get(variant["url"])
            assert fetched.status_code == 200, fetched.text
            thumb = Image.open(io.BytesIO(fetched.content))
            assert thumb.format == "WEBP"
            assert thumb.size == size
            # The top-left quarter is still yellow: the pixels were decoded, not a placeholder.
            pixel = thumb.convert("RGB").getpixel((5, 5))
            assert isinstance(pixel, tuple)
            assert pixel[0] > 200
            assert pixel[2] < 100
            assert not thumb.getexif()
            assert "exif" not in thumb.info
            assert "xmp" not in thumb.info


async def test_a_corrupt_heic_fails_with_a_reason(
    client: httpx.AsyncClient, make_account: MakeAccount, worker: None
) -> None:
    user = await make_account()
    # Valid HEIC box headers (so the magic-byte check passes), then garbage where the image should be.
    good = heic_with_gps(64, 48)
    broken = good[:40] + bytes(len(good) - 40)
    media_id, done = await upload(client, user, broken, "image/heic")
    assert done == {"status": "processing"}
    media = await wait_status(client, user, media_id, "ready", "failed")
    assert media["status"] == "failed"
    assert "cannot be decoded" in (media["status_reason"] or "")
