"""What may be uploaded: allowed content types and size limits per type, magic-byte sniffing, MP4 boxes."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import msgspec

from shared.domain.media.models import MediaType

MiB = 1024 * 1024

SIZE_LIMITS: dict[MediaType, int] = {
    MediaType.PHOTO: 20 * MiB,
    MediaType.VIDEO: 500 * MiB,
    MediaType.AUDIO: 50 * MiB,
    MediaType.DOCUMENT: 25 * MiB,
}
"""The largest upload accepted per type, in bytes."""

# Declared content type -> the sniffed formats its bytes may have.
ALLOWED: dict[MediaType, dict[str, frozenset[str]]] = {
    MediaType.PHOTO: {
        "image/jpeg": frozenset({"jpeg"}),
        "image/png": frozenset({"png"}),
        "image/webp": frozenset({"webp"}),
        "image/heic": frozenset({"heic"}),
        "image/heif": frozenset({"heic"}),
    },
    MediaType.VIDEO: {
        "video/mp4": frozenset({"mp4"}),
        "video/quicktime": frozenset({"quicktime", "mp4"}),
    },
    MediaType.AUDIO: {
        "audio/mpeg": frozenset({"mp3"}),
        "audio/aac": frozenset({"aac", "m4a"}),
        "audio/mp4": frozenset({"m4a", "mp4"}),
        "audio/x-m4a": frozenset({"m4a", "mp4"}),
    },
    MediaType.DOCUMENT: {
        "application/pdf": frozenset({"pdf"}),
    },
}

SNIFF_BYTES = 64
"""How many leading bytes :func:`sniff` needs."""

_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_M4A_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P "})
_QT_BRANDS = frozenset({b"qt  "})
_MP4_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"avc1",
        b"dash",
        b"M4V ",
        b"MSNV",
        b"3gp4",
        b"3gp5",
    }
)


def human_size(n: int) -> str:
    """``20 MiB`` style."""
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


def sniff(head: bytes) -> str | None:
    """The format the leading bytes of a file show (``jpeg``, ``png``, ``mp4`` ...), or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return "heic"
        if brand in _M4A_BRANDS:
            return "m4a"
        if brand in _QT_BRANDS:
            return "quicktime"
        if brand in _MP4_BRANDS:
            return "mp4"
        return None
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") and len(head) >= 8:
        return "quicktime"  # old QuickTime files have no ftyp
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        layer = (head[1] >> 1) & 0b11
        if head[1] & 0xE0 == 0xE0 and layer != 0:
            return "mp3"  # MPEG audio frame sync, layer I-III
        if head[1] & 0xF6 == 0xF0:
            return "aac"  # ADTS frame sync, layer 0
    return None


class MovieFacts(msgspec.Struct, frozen=True):
    """What the ``moov`` box of an MP4/QuickTime file says."""

    duration_ms: int | None
    width: int | None
    height: int | None


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload_start, payload_end)`` of each ISO-BMFF box in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def parse_moov(moov: bytes) -> MovieFacts:
    """Duration from ``mvhd`` and the first visual track's size from ``tkhd``."""
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    for kind, start, end in iter_boxes(moov):
        if kind == b"mvhd" and end - start >= 32:
            version = moov[start]
            if version == 1:
                timescale, duration = struct.unpack(">IQ", moov[start + 20 : start + 32])
            else:
                timescale, duration = struct.unpack(">II", moov[start + 12 : start + 20])
            if timescale and duration != 0xFFFFFFFF:
                duration_ms = duration * 1000 // timescale
        elif kind == b"trak" and width is None:
            for inner, istart, iend in iter_boxes(moov, start, end):
                if inner != b"tkhd":
                    continue
                offset = istart + (88 if moov[istart] == 1 else 76)
                if offset + 8 <= iend:
                    w, h = struct.unpack(">II", moov[offset : offset + 8])
                    if w >> 16 and h >> 16:
                        width, height = w >> 16, h >> 16
    return MovieFacts(duration_ms=duration_ms, width=width, height=height)
