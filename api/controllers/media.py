"""``/v1/media`` and ``/v1/moderation/media``: uploads, reads, reports, deletion, moderation."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_302_FOUND

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.media.models import ModerationAction
from shared.domain.media.schemas import (
    CompleteResult,
    MediaView,
    ModerationDecision,
    ModerationResult,
    QueueItem,
    ReportRequest,
    ReportResult,
    UploadRequest,
    UploadTicket,
)
from shared.domain.media.services import MediaService
from shared.pagination import Page


class MediaController(Controller):
    """Uploads and the owner's view of their media."""

    path = "/v1/media"
    tags = ["media"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_upload(
        self, data: UploadRequest, media_service: MediaService, caller: AccessClaims
    ) -> UploadTicket:
        """Reserve a media id and get presigned POST and PUT URLs (valid at most ten minutes)."""
        return await media_service.create_upload(caller, data)

    @post("/{media_id:str}/complete", status_code=HTTP_200_OK)
    async def complete(self, media_id: str, media_service: MediaService, caller: AccessClaims) -> CompleteResult:
        """Verify the uploaded bytes; ``processing`` or ``rejected`` with a reason."""
        return await media_service.complete_upload(caller, parse_id(ids.Prefix.MEDIA, media_id))

    @get("/{media_id:str}")
    async def read(self, media_id: str, media_service: MediaService, caller: AccessClaims) -> MediaView:
        """Status, dimensions, variants and URLs of one of the caller's media."""
        return await media_service.get_media(caller, parse_id(ids.Prefix.MEDIA, media_id))

    @delete("/{media_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, media_id: str, media_service: MediaService, caller: AccessClaims) -> None:
        """Delete one of the caller's media and its stored objects."""
        await media_service.delete_media(caller, parse_id(ids.Prefix.MEDIA, media_id))

    @post("/{media_id:str}/report", status_code=HTTP_201_CREATED)
    async def report(
        self, media_id: str, data: ReportRequest, media_service: MediaService, caller: AccessClaims
    ) -> ReportResult:
        """Report a media item to the moderators."""
        return await media_service.report(caller, parse_id(ids.Prefix.MEDIA, media_id), data)

    @get("/{media_id:str}/content/{variant:str}", exclude_from_auth=True, status_code=HTTP_302_FOUND)
    async def content(self, media_id: str, variant: str, media_service: MediaService) -> Redirect:
        """The stable URL of a public item's variant (avatars): a redirect to a short-lived object URL."""
        url = await media_service.public_variant_url(parse_id(ids.Prefix.MEDIA, media_id), variant)
        # Browsers and CDNs may reuse the redirect while the signed URL it names is still valid.
        return Redirect(url, status_code=HTTP_302_FOUND, headers={"Cache-Control": "public, max-age=300"})


class ModerationController(Controller):
    """The moderators' media queue (role ``moderator`` or ``admin``)."""

    path = "/v1/moderation/media"
    tags = ["moderation"]

    @get("/")
    async def queue(
        self, media_service: MediaService, caller: AccessClaims, cursor: str | None = None, limit: int | None = None
    ) -> Page[QueueItem]:
        """Items awaiting review or reported, oldest first."""
        return await media_service.moderation_queue(caller, cursor, limit)

    @post("/{media_id:str}/approve", status_code=HTTP_200_OK)
    async def approve(
        self, media_id: str, media_service: MediaService, caller: AccessClaims, data: ModerationDecision | None = None
    ) -> ModerationResult:
        """Publish an item under review (or clear the reports on a ready one)."""
        return await media_service.moderate(
            caller, parse_id(ids.Prefix.MEDIA, media_id), ModerationAction.APPROVE, data or ModerationDecision()
        )

    @post("/{media_id:str}/reject", status_code=HTTP_200_OK)
    async def reject(
        self, media_id: str, media_service: MediaService, caller: AccessClaims, data: ModerationDecision | None = None
    ) -> ModerationResult:
        """Reject an item: it disappears from every read and its objects are deleted."""
        return await media_service.moderate(
            caller, parse_id(ids.Prefix.MEDIA, media_id), ModerationAction.REJECT, data or ModerationDecision()
        )
