"""Bucket lifecycle rules for media (seed 000 §3.4), applied by each worker at start-up.

- Event media originals move to Glacier 180 days after upload (event media is uploaded around
  the event, so this is "after the event"); thumbnails stay in Standard. Variants are small WebP
  files beside their original, so the rule selects objects above 256 KiB under ``event-media/``.
- Incomplete multipart uploads are aborted after a day.
- Uploads never completed are not a lifecycle rule: the worker's hourly sweep removes their rows
  and objects after 24 h, since the row must go with the object.

SeaweedFS (the embedded store) answers ``NotImplemented`` to any transition rule; it supports
expiration and multipart-abort rules only. There the worker applies the subset it supports and
logs that the archive rule was skipped; on AWS S3 the full set is applied.
"""

from __future__ import annotations

from typing import Any

import structlog

from shared.errors import DomainError
from shared.storage import Storage

log = structlog.stdlib.get_logger(__name__)

ARCHIVE_AFTER_DAYS = 180
THUMBNAIL_MAX_BYTES = 256 * 1024

ABORT_MULTIPART_RULE: dict[str, Any] = {
    "ID": "abort-incomplete-multipart",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}

ARCHIVE_EVENT_MEDIA_RULE: dict[str, Any] = {
    "ID": "archive-event-media",
    "Filter": {"And": {"Prefix": "event-media/", "ObjectSizeGreaterThan": THUMBNAIL_MAX_BYTES}},
    "Status": "Enabled",
    "Transitions": [{"Days": ARCHIVE_AFTER_DAYS, "StorageClass": "GLACIER"}],
}


async def apply_media_lifecycle(storage: Storage) -> list[str]:
    """Apply the media rules the store supports; returns the ids of the rules in force. Never raises."""
    try:
        await storage.apply_lifecycle([ABORT_MULTIPART_RULE, ARCHIVE_EVENT_MEDIA_RULE])
        return [ABORT_MULTIPART_RULE["ID"], ARCHIVE_EVENT_MEDIA_RULE["ID"]]
    except DomainError as exc:
        if exc.code != "store_not_implemented":
            log.warning("media.lifecycle_failed", error=exc.detail)
            return []
    log.info("media.lifecycle_partial", skipped=ARCHIVE_EVENT_MEDIA_RULE["ID"], reason="store has no transitions")
    try:
        await storage.apply_lifecycle([ABORT_MULTIPART_RULE])
    except DomainError as exc:
        log.warning("media.lifecycle_failed", error=exc.detail)
        return []
    return [ABORT_MULTIPART_RULE["ID"]]
