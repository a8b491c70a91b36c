"""The processing step run by the worker: decode safely, strip metadata, make variants, record the facts."""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime

import msgspec
import structlog
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.domain.media.formats import SIZE_LIMITS, MovieFacts, iter_boxes, parse_moov, sniff
from shared.domain.media.models import Media, MediaStatus, MediaType, PreviewStatus
from shared.domain.media.services import VARIANT_CONTENT_TYPE, variant_key
from shared.storage import Storage

log = structlog.stdlib.get_logger(__name__)

MAX_PIXELS = 64_000_000
"""Largest image decoded (a 48 MP phone photo fits); bigger ones are refused before any pixel is decoded."""

VARIANT_SIZES: dict[str, int] = {"w256": 256, "w1024": 1024}
"""Variant name -> longest side in pixels."""

_DECODABLE = ("JPEG", "PNG", "WEBP", "HEIF")
_MAX_MOOV_BYTES = 32 * 1024 * 1024
_MAX_TOP_BOXES = 64


class ProcessingFailed(Exception):
    """The file cannot be processed; the message is the reason shown to its owner."""


class ImageResult(msgspec.Struct, frozen=True):
    """A decoded image's size and its encoded variants."""

    width: int
    height: int
    variants: dict[str, bytes]


@functools.cache
def _enable_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (iPhone photos) through libheif; once per process, on first use."""
    # Imported here: loading libheif takes a noticeable part of a second, which worker start-up need not pay.
    import pillow_heif

    pillow_heif.register_heif_opener()


def render_variants(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageResult:
    """Decode ``data`` and encode each variant as WebP without EXIF, XMP or GPS; CPU-bound."""
    _enable_heif()
    with warnings.catch_warnings():
        # Pillow only warns between its limit and twice it; make that an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data), formats=_DECODABLE)
            width, height = opened.size
            if width * height > max_pixels:
                raise ProcessingFailed(f"the image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
            opened.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ProcessingFailed(f"the image is over the limit of {max_pixels} pixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ProcessingFailed(f"the image cannot be decoded ({type(exc).__name__})") from None
    # Apply the EXIF orientation to the pixels, since the tag itself is dropped.
    image: Image.Image = ImageOps.exif_transpose(opened)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    variants: dict[str, bytes] = {}
    for name, side in VARIANT_SIZES.items():
        # A fresh image carries no info dict, so no metadata can ride along into the encoder.
        resized = Image.new(image.mode, image.size)
        resized.paste(image)
        resized.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        resized.save(out, format="WEBP", quality=82, method=4, exif=b"", xmp=b"", icc_profile=None)
        variants[name] = out.getvalue()
    return ImageResult(width=image.width, height=image.height, variants=variants)


class Outcome(msgspec.Struct, kw_only=True):
    """What processing found, written to the row in one update."""

    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    preview_status: PreviewStatus
    variants: dict[str, str] = msgspec.field(default_factory=dict)


class MediaProcessor:
    """Runs processing for one item; idempotent (a second run of a processed item does nothing)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._clock = clock
        self._max_pixels = max_pixels

    async def process(self, media_id: uuid.UUID) -> str | None:
        """Process ``media_id`` if it is ``processing``; returns the status it ended in (``None``: nothing to do)."""
        async with self._sessions() as session:
            media = await session.get(Media, media_id)
        if media is None or media.status != MediaStatus.PROCESSING.value:
            return None
        values: dict[str, object]
        try:
            outcome = await self._run(media)
        except ProcessingFailed as exc:
            values = {"status": MediaStatus.FAILED.value, "status_reason": str(exc)}
            log.info("media.failed", media_id=str(media_id), reason=str(exc))
        else:
            status = MediaStatus.PENDING_REVIEW if media.requires_review else MediaStatus.READY
            values = {
                "status": status.value,
                "status_reason": None,
                "width": outcome.width,
                "height": outcome.height,
                "duration_ms": outcome.duration_ms,
                "preview_status": outcome.preview_status.value,
                "variants": outcome.variants,
            }
        values["processed_at"] = self._clock()
        async with self._sessions.begin() as session:
            done = await session.scalar(
                update(Media)
                .where(Media.id == media_id, Media.status == MediaStatus.PROCESSING.value)
                .values(**values)
                .returning(Media.status)
            )
        return None if done is None else str(done)

    async def _run(self, media: Media) -> Outcome:
        kind = MediaType(media.type)
        if kind is MediaType.PHOTO:
            return await self._photo(media)
        if kind is MediaType.VIDEO:
            facts = await self._movie_facts(media)
            # No video decoder ships with the stack, so there is no poster frame: said so, not faked.
            return Outcome(
                width=facts.width,
                height=facts.height,
                duration_ms=facts.duration_ms,
                preview_status=PreviewStatus.UNAVAILABLE,
            )
        if kind is MediaType.AUDIO:
            head = await self._storage.read(media.object_key, length=64)
            facts = await self._movie_facts(media) if sniff(head) in ("m4a", "mp4") else MovieFacts(None, None, None)
            return Outcome(duration_ms=facts.duration_ms, preview_status=PreviewStatus.NOT_APPLICABLE)
        return Outcome(preview_status=PreviewStatus.NOT_APPLICABLE)

    async def _photo(self, media: Media) -> Outcome:
        data = await self._storage.read(media.object_key)
        if len(data) > SIZE_LIMITS[MediaType.PHOTO]:
            raise ProcessingFailed("the image is larger than photos may be")
        result = await asyncio.to_thread(render_variants, data, max_pixels=self._max_pixels)
        keys: dict[str, str] = {}
        for name, encoded in result.variants.items():
            key = variant_key(media, name)
            await self._storage.put(key, encoded, VARIANT_CONTENT_TYPE)
            keys[name] = key
        return Outcome(width=result.width, height=result.height, preview_status=PreviewStatus.READY, variants=keys)

    async def _movie_facts(self, media: Media) -> MovieFacts:
        """Find the top-level ``moov`` box with ranged reads (it may sit after a large ``mdat``) and parse it."""
        size = media.size_bytes or 0
        pos = 0
        for _ in range(_MAX_TOP_BOXES):
            if pos + 8 > size:
                break
            header = await self._storage.read(media.object_key, start=pos, length=min(16, size - pos))
            box_size, kind = _box_header(header, size - pos)
            if box_size is None:
                break
            if kind == b"moov":
                if box_size > _MAX_MOOV_BYTES:
                    raise ProcessingFailed("the movie header is too large")
                moov = await self._storage.read(media.object_key, start=pos, length=box_size)
                for _kind, start, end in iter_boxes(moov):
                    return parse_moov(moov[start:end])
            pos += box_size
        raise ProcessingFailed("the file has no movie header (moov box)")


def _box_header(header: bytes, remaining: int) -> tuple[int | None, bytes]:
    """Size and type of the box at ``header`` (``remaining`` bytes left); size ``None`` if unreadable."""
    if len(header) < 8:
        return None, b""
    size = int.from_bytes(header[:4], "big")
    kind = header[4:8]
    if size == 1:
        if len(header) < 16:
            return None, kind
        size = int.from_bytes(header[8:16], "big")
    elif size == 0:
        size = remaining  # the box runs to the end of the file
    if size < 8 or size > remaining:
        return None, kind
    return size, kind
