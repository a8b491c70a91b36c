"""Media jobs: process an uploaded item, purge a discarded one's objects, sweep abandoned uploads."""

from __future__ import annotations

from typing import Any

import structlog

from shared.bus import MediaDiscarded, MediaUploaded
from shared.domain.media.processing import MediaProcessor
from shared.domain.media.services import MediaService
from workers.context import JobContext, WorkerResources, resources_of
from workers.jobs.base import JobSpec

log = structlog.stdlib.get_logger(__name__)


def media_service(res: WorkerResources) -> MediaService:
    """The media service on the worker's connections."""
    return MediaService(res.settings, res.sessions, res.sessions, res.storage, clock=res.clock)


async def process_media(ctx: JobContext, event: MediaUploaded) -> None:
    """Make the variants and record the facts of one uploaded item (a second run does nothing)."""
    res = ctx.resources
    status = await MediaProcessor(res.sessions, res.storage, clock=res.clock).process(event.media_id)
    log.info("media.processed", media_id=str(event.media_id), status=status)


async def purge_media(ctx: JobContext, event: MediaDiscarded) -> None:
    """Remove a deleted or rejected item's objects (deleting absent objects is fine, so reruns are too)."""
    await media_service(ctx.resources).purge_discarded(event.media_id, event.object_keys)


async def sweep_abandoned_uploads(ctx: dict[Any, Any]) -> None:
    """Cron job: delete uploads never completed within a day, rows and objects."""
    removed = await media_service(resources_of(ctx)).sweep_abandoned()
    if removed:
        log.info("media.sweep", removed=removed)


PROCESS_MEDIA = JobSpec(name="process_media", payload_type=MediaUploaded, run=process_media, timeout_s=300.0)
PURGE_MEDIA = JobSpec(name="purge_media", payload_type=MediaDiscarded, run=purge_media)
