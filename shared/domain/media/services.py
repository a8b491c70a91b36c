"""Media: upload slots, verification, reads, attachment, deletion, moderation and the abandoned-upload sweep.

Lifecycle of one item::

    pending --complete--> processing --worker--> ready | pending_review | failed
       |                      (bytes wrong) --> rejected
       '--(never completed, 24 h)--> row and object removed by the sweep
    pending_review --moderator--> ready | rejected;  ready --report + moderator--> rejected
    any --owner DELETE--> deleted (objects purged by a job, then the row)

Features that attach media (avatars here; posts, events, chat messages, clubs elsewhere) call
:meth:`MediaService.claim_for_attachment` inside their own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import msgspec
import structlog
from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club
from shared.domain.media.formats import ALLOWED, SIZE_LIMITS, SNIFF_BYTES, human_size, sniff
from shared.domain.media.models import (
    CaseStatus,
    Media,
    MediaAuditEntry,
    MediaStatus,
    MediaType,
    ModerationAction,
    ModerationCase,
    PreviewStatus,
    Purpose,
)
from shared.domain.media.schemas import (
    CompleteResult,
    MediaVariant,
    MediaView,
    ModerationDecision,
    ModerationResult,
    PresignedPostForm,
    QueueItem,
    ReportRequest,
    ReportResult,
    UploadRequest,
    UploadTicket,
)
from shared.domain.users.models import Role, User
from shared.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page
from shared.storage import Storage

log = structlog.stdlib.get_logger(__name__)

UPLOAD_TTL_S = 600
"""How long upload URLs stay valid (the issue caps it at ten minutes)."""

READ_URL_TTL_S = 3600
"""How long presigned GET URLs handed to readers stay valid."""

ABANDONED_AFTER = timedelta(hours=24)
"""A ``pending`` upload this old is swept: row and object."""

PUBLIC_PURPOSES = frozenset({Purpose.AVATAR})
"""Purposes whose variants anyone may fetch through the stable ``/v1/media/{id}/content/{variant}`` URL."""

VARIANT_CONTENT_TYPE = "image/webp"
_MODERATOR_ROLES = frozenset({Role.MODERATOR.value, Role.ADMIN.value})
_TARGET_PREFIX = {Purpose.EVENT: ids.Prefix.EVENT, Purpose.CLUB: ids.Prefix.CLUB}
_HIDDEN = (MediaStatus.DELETED.value,)


class TargetPolicy(msgspec.Struct, frozen=True):
    """What the feature owning an upload's target decided: allowed, and whether uploads need review."""

    requires_review: bool = False


TargetCheck = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[TargetPolicy]]
"""``(session, caller_id, target_id) -> TargetPolicy``; raises ``NotFound``/``PermissionDenied`` when not allowed."""


class CursorKey(msgspec.Struct, frozen=True):
    """Keyset position in an id-ordered list."""

    id: uuid.UUID


def object_prefix(purpose: Purpose, owner_id: uuid.UUID, target_id: uuid.UUID | None, media_id: uuid.UUID) -> str:
    """The key prefix of an item (seed 000 §3.4): the original and its variants live under it."""
    med = ids.encode(ids.Prefix.MEDIA, media_id)
    if purpose in _TARGET_PREFIX:
        assert target_id is not None
        return f"{purpose.value}-media/{ids.encode(_TARGET_PREFIX[purpose], target_id)}/{med}"
    folder = {Purpose.AVATAR: "avatars", Purpose.POST: "posts", Purpose.MESSAGE: "messages", Purpose.PLACE: "places"}[
        purpose
    ]
    return f"user-media/{ids.encode(ids.Prefix.USER, owner_id)}/{folder}/{med}"


def variant_key(media: Media, name: str) -> str:
    """Where variant ``name`` of ``media`` is stored: beside the original."""
    return f"{media.object_key.rsplit('/', 1)[0]}/{name}.webp"


def all_keys(media: Media) -> list[str]:
    """The original and every variant of ``media``."""
    return [media.object_key, *(str(k) for k in media.variants.values())]


def is_public(media: Media) -> bool:
    """Whether anyone may fetch the item's variants: avatars, and club images in use as a club's avatar or cover."""
    if media.status != MediaStatus.READY.value:
        return False
    if Purpose(media.purpose) in PUBLIC_PURPOSES:
        return True
    # Place photos are public once attached to a place (places are public pages).
    return media.purpose in (Purpose.CLUB.value, Purpose.PLACE.value) and media.attached_to_id is not None


def is_moderator(claims: AccessClaims) -> bool:
    """Whether the caller may moderate media."""
    return bool(_MODERATOR_ROLES.intersection(claims.roles))


class MediaService:
    """Upload slots, verification, reads, attachment, deletion and moderation of media."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        storage: Storage,
        *,
        clock: Callable[[], datetime] = utcnow,
        upload_ttl_s: int = UPLOAD_TTL_S,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._reads = reads
        self._storage = storage
        self._clock = clock
        self._upload_ttl_s = min(upload_ttl_s, UPLOAD_TTL_S)
        self._target_checks: dict[Purpose, TargetCheck] = {}

    def register_target(self, purpose: Purpose, check: TargetCheck) -> None:
        """Let ``POST /v1/media`` accept ``purpose`` uploads, authorised by the owning feature's ``check``."""
        self._target_checks[purpose] = check

    # Uploads

    async def create_upload(
        self, caller: AccessClaims, request: UploadRequest, *, target_check: TargetCheck | None = None
    ) -> UploadTicket:
        """A ``pending`` row and presigned POST/PUT for it; ``target_check`` authorises event/club targets."""
        media_type, purpose, target_id = self._validate(request)
        check = target_check or self._target_checks.get(purpose)
        if target_id is not None and check is None:
            raise InvalidInput(
                f"uploads for {purpose.value} targets are not open",
                code="purpose_unavailable",
                errors=[FieldError("purpose", f"{purpose.value} uploads go through that feature's endpoint")],
            )
        media_id = ids.uuid7()
        key = f"{object_prefix(purpose, caller.user_id, target_id, media_id)}/original"
        async with self._sessions.begin() as session:
            policy = TargetPolicy()
            if check is not None and target_id is not None:
                policy = await check(session, caller.user_id, target_id)
            session.add(
                Media(
                    id=media_id,
                    owner_id=caller.user_id,
                    type=media_type.value,
                    purpose=purpose.value,
                    target_id=target_id,
                    content_type=request.content_type,
                    file_name=request.file_name,
                    declared_size_bytes=request.size_bytes,
                    object_key=key,
                    requires_review=policy.requires_review,
                    preview_status=PreviewStatus.PENDING.value,
                )
            )
        now = self._clock()
        post = self._storage.presign_post(key, request.content_type, request.size_bytes, self._upload_ttl_s)
        put = self._storage.presign_put(key, request.content_type, request.size_bytes, self._upload_ttl_s)
        return UploadTicket(
            media_id=ids.encode(ids.Prefix.MEDIA, media_id),
            upload=PresignedPostForm(url=post.url, fields=post.fields),
            upload_url=put,
            expires_at=now + timedelta(seconds=self._upload_ttl_s),
        )

    def _validate(self, request: UploadRequest) -> tuple[MediaType, Purpose, uuid.UUID | None]:
        media_type, purpose = MediaType(request.type), Purpose(request.purpose)
        errors: list[FieldError] = []
        allowed = ALLOWED[media_type]
        if request.content_type.lower() not in allowed:
            errors.append(FieldError("content_type", f"{media_type.value} accepts {', '.join(sorted(allowed))}"))
        limit = SIZE_LIMITS[media_type]
        if request.size_bytes > limit:
            errors.append(FieldError("size_bytes", f"{media_type.value} uploads are limited to {human_size(limit)}"))
        if purpose is Purpose.AVATAR and media_type is not MediaType.PHOTO:
            errors.append(FieldError("type", "an avatar must be a photo"))
        target_id: uuid.UUID | None = None
        if purpose in _TARGET_PREFIX:
            if request.target_id is None:
                errors.append(FieldError("target_id", f"required for {purpose.value} uploads"))
            else:
                try:
                    target_id = ids.decode(_TARGET_PREFIX[purpose], request.target_id)
                except ids.InvalidId:
                    errors.append(FieldError("target_id", f"not a {_TARGET_PREFIX[purpose].value}_ id"))
        elif request.target_id is not None:
            errors.append(FieldError("target_id", f"{purpose.value} uploads take no target"))
        if errors:
            code = "media_too_large" if any(e.field == "size_bytes" for e in errors) else None
            raise InvalidInput("the upload is not allowed", code=code, errors=errors)
        return media_type, purpose, target_id

    async def complete_upload(self, caller: AccessClaims, media_id: uuid.UUID) -> CompleteResult:
        """Check the uploaded object (size, type by magic bytes) and queue processing, or reject it."""
        async with self._reads() as session:
            media = await self._owned(session, caller.user_id, media_id)
        if media.status != MediaStatus.PENDING.value:
            return CompleteResult(status=media.status, reason=media.status_reason)
        try:
            info = await self._storage.head(media.object_key)
        except NotFound:
            raise InvalidInput("nothing has been uploaded for this media yet", code="upload_missing") from None
        reason: str | None = None
        if info.size > media.declared_size_bytes:
            reason = f"the file is {info.size} bytes, more than the {media.declared_size_bytes} declared"
        elif (info.content_type or "").lower() != media.content_type.lower():
            reason = f"stored as {info.content_type}, not the declared {media.content_type}"
        else:
            found = sniff(await self._storage.read(media.object_key, length=min(SNIFF_BYTES, info.size)))
            accepted = ALLOWED[MediaType(media.type)][media.content_type.lower()]
            if found not in accepted:
                reason = f"the file's bytes are {found or 'of an unknown format'}, not {media.content_type}"
        now = self._clock()
        async with self._sessions.begin() as session:
            values: dict[str, object] = {"completed_at": now, "size_bytes": info.size}
            if reason is None:
                values["status"] = MediaStatus.PROCESSING.value
            else:
                values |= {"status": MediaStatus.REJECTED.value, "status_reason": reason}
            changed = await session.scalar(
                update(Media)
                .where(Media.id == media_id, Media.status == MediaStatus.PENDING.value)
                .values(**values)
                .returning(Media.id)
            )
            if changed is not None and reason is None:
                await bus.record(session, bus.MediaUploaded(media_id=media_id))
        if changed is None:
            # A concurrent complete got there first; report what it decided.
            async with self._reads() as session:
                current = await self._owned(session, caller.user_id, media_id)
            return CompleteResult(status=current.status, reason=current.status_reason)
        if reason is not None:
            await self._storage.delete([media.object_key])
            return CompleteResult(status=MediaStatus.REJECTED.value, reason=reason)
        return CompleteResult(status=MediaStatus.PROCESSING.value)

    # Reads

    async def get_media(self, caller: AccessClaims, media_id: uuid.UUID) -> MediaView:
        """The item for its owner or a moderator; anyone else gets 404."""
        async with self._reads() as session:
            media = await session.get(Media, media_id)
        if media is None or media.status in _HIDDEN or (media.owner_id != caller.user_id and not is_moderator(caller)):
            raise NotFound("no such media", code="media_not_found")
        return self.view(media)

    async def views(self, media_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MediaView]:
        """Ready items by id, for features rendering what is attached to them; others are left out."""
        if not media_ids:
            return {}
        async with self._reads() as session:
            rows = await session.scalars(
                select(Media).where(Media.id.in_(media_ids), Media.status == MediaStatus.READY.value)
            )
            return {m.id: self.view(m) for m in rows}

    async def target_views(self, purpose: Purpose, target_id: uuid.UUID, *, limit: int = 50) -> list[MediaView]:
        """Ready items uploaded for ``(purpose, target_id)`` (an event's media), oldest first."""
        async with self._reads() as session:
            rows = await session.scalars(
                select(Media)
                .where(
                    Media.purpose == purpose.value,
                    Media.target_id == target_id,
                    Media.status == MediaStatus.READY.value,
                )
                .order_by(Media.id)
                .limit(limit)
            )
            return [self.view(m) for m in rows]

    async def public_variant_url(self, media_id: uuid.UUID, variant: str) -> str:
        """A presigned GET for a variant of a ready public item (avatars); 404 otherwise."""
        async with self._reads() as session:
            media = await session.get(Media, media_id)
        if media is None or not is_public(media) or variant not in media.variants:
            raise NotFound("no such media", code="media_not_found")
        return self._storage.presign_get(str(media.variants[variant]), READ_URL_TTL_S)

    def public_url(self, media_id: uuid.UUID, variant: str) -> str:
        """The stable URL of a public item's variant (it redirects to the object store)."""
        base = self._settings.public_api_url.rstrip("/")
        return f"{base}/v1/media/{ids.encode(ids.Prefix.MEDIA, media_id)}/content/{variant}"

    def view(self, media: Media) -> MediaView:
        """The read shape; URLs only for items whose objects may be shown."""
        shown = media.status in (MediaStatus.READY.value, MediaStatus.PENDING_REVIEW.value)
        public = is_public(media)
        variants: list[MediaVariant] = []
        if shown:
            # Smallest first; names are w<longest side>.
            for name, key in sorted(media.variants.items(), key=lambda item: int(item[0].lstrip("w") or 0)):
                link = (
                    self.public_url(media.id, name) if public else self._storage.presign_get(str(key), READ_URL_TTL_S)
                )
                variants.append(MediaVariant(name=name, url=link, content_type=VARIANT_CONTENT_TYPE))
        url: str | None = None
        if shown:
            if media.type == MediaType.PHOTO.value:
                # The original of a photo keeps its EXIF (GPS included): only stripped variants are shown.
                url = variants[-1].url if variants else None
            else:
                url = self._storage.presign_get(media.object_key, READ_URL_TTL_S)
        return MediaView(
            id=ids.encode(ids.Prefix.MEDIA, media.id),
            owner_id=ids.encode(ids.Prefix.USER, media.owner_id),
            type=media.type,
            purpose=media.purpose,
            content_type=media.content_type,
            file_name=media.file_name,
            size_bytes=media.size_bytes,
            status=media.status,
            status_reason=media.status_reason,
            width=media.width,
            height=media.height,
            duration_ms=media.duration_ms,
            preview_status=media.preview_status,
            url=url,
            variants=variants,
            created_at=media.created_at,
        )

    # Attachment

    async def claim_for_attachment(
        self,
        session: AsyncSession,
        owner_id: uuid.UUID,
        media_ids: Sequence[uuid.UUID],
        purpose: Purpose,
        target_id: uuid.UUID,
    ) -> list[Media]:
        """Lock and attach ``media_ids`` to ``(purpose, target_id)`` in the caller's transaction.

        Each item must be the owner's (else 404 ``media_not_found``), ``ready`` (else 422
        ``media_not_ready``), uploaded for ``purpose`` (and for ``target_id`` when the purpose has
        one; else 422 ``media_purpose_mismatch``) and not attached elsewhere (else 409
        ``media_already_attached``). Attaching again to the same target is a no-op. Returns the rows
        in the order given.
        """
        wanted = list(dict.fromkeys(media_ids))
        if not wanted:
            return []
        rows = await session.scalars(select(Media).where(Media.id.in_(wanted)).order_by(Media.id).with_for_update())
        found = {m.id: m for m in rows}
        for media_id in wanted:
            media = found.get(media_id)
            if media is None or media.owner_id != owner_id or media.status in (*_HIDDEN, MediaStatus.REJECTED.value):
                raise NotFound(f"no such media: {ids.encode(ids.Prefix.MEDIA, media_id)}", code="media_not_found")
        for media_id in wanted:
            media = found[media_id]
            public = ids.encode(ids.Prefix.MEDIA, media_id)
            if media.status != MediaStatus.READY.value:
                raise InvalidInput(
                    f"media {public} is {media.status}, not ready",
                    code="media_not_ready",
                    errors=[FieldError("media_ids", f"{public} is {media.status}")],
                )
            if media.purpose != purpose.value or (purpose in _TARGET_PREFIX and media.target_id != target_id):
                raise InvalidInput(
                    f"media {public} was uploaded for {media.purpose}, not this {purpose.value}",
                    code="media_purpose_mismatch",
                    errors=[FieldError("media_ids", f"{public} belongs to another {media.purpose}")],
                )
            if media.attached_to_id is not None and (
                media.attached_to_kind != purpose.value or media.attached_to_id != target_id
            ):
                raise Conflict(f"media {public} is already attached elsewhere", code="media_already_attached")
        for media_id in wanted:
            found[media_id].attached_to_kind = purpose.value
            found[media_id].attached_to_id = target_id
        await session.flush()
        return [found[m] for m in wanted]

    async def release_attachment(
        self, session: AsyncSession, purpose: Purpose, target_id: uuid.UUID, *, keep: Sequence[uuid.UUID] = ()
    ) -> None:
        """Detach whatever is attached to ``(purpose, target_id)`` except ``keep``, in the caller's transaction."""
        await session.execute(
            update(Media)
            .where(
                Media.attached_to_kind == purpose.value,
                Media.attached_to_id == target_id,
                Media.id.not_in(keep) if keep else Media.id.is_not(None),
            )
            .values(attached_to_kind=None, attached_to_id=None)
        )

    async def discard_attached(self, session: AsyncSession, purpose: Purpose, target_id: uuid.UUID) -> int:
        """Delete what is attached to ``(purpose, target_id)`` in the caller's transaction; a job purges objects.

        For targets that are deleted (a post): their media goes with them. Returns how many items.
        """
        rows = list(
            await session.scalars(
                select(Media)
                .where(Media.attached_to_kind == purpose.value, Media.attached_to_id == target_id)
                .order_by(Media.id)
                .with_for_update()
            )
        )
        for media in rows:
            await self._discard(session, media, MediaStatus.DELETED, None)
        return len(rows)

    async def discard_all_of_owner(self, session: AsyncSession, owner_id: uuid.UUID) -> int:
        """Delete every item ``owner_id`` uploaded, in the caller's transaction (account deletion).

        Each goes the way of an owner's DELETE: hidden at once, objects removed by ``purge_media`` jobs.
        Rejected items are discarded again so their remaining variants go too. Returns how many items.
        """
        rows = list(
            await session.scalars(
                select(Media)
                .where(Media.owner_id == owner_id, Media.status.not_in(_HIDDEN))
                .order_by(Media.id)
                .with_for_update()
            )
        )
        for media in rows:
            await self._discard(session, media, MediaStatus.DELETED, None)
        return len(rows)

    async def set_avatar(self, session: AsyncSession, user_id: uuid.UUID, media_id: uuid.UUID | None) -> str | None:
        """Attach ``media_id`` as ``user_id``'s avatar (``None`` clears it); returns the new ``avatar_url``."""
        keep: list[uuid.UUID] = []
        url: str | None = None
        if media_id is not None:
            [media] = await self.claim_for_attachment(session, user_id, [media_id], Purpose.AVATAR, user_id)
            keep = [media.id]
            url = self.public_url(media.id, "w256")
        await self.release_attachment(session, Purpose.AVATAR, user_id, keep=keep)
        return url

    # Deletion

    async def delete_media(self, caller: AccessClaims, media_id: uuid.UUID) -> None:
        """The owner deletes an item: it vanishes now and its objects are purged by a job."""
        async with self._sessions.begin() as session:
            media = await session.scalar(select(Media).where(Media.id == media_id).with_for_update())
            if media is None or media.owner_id != caller.user_id or media.status in _HIDDEN:
                raise NotFound("no such media", code="media_not_found")
            await self._discard(session, media, MediaStatus.DELETED, None)

    async def _discard(self, session: AsyncSession, media: Media, status: MediaStatus, reason: str | None) -> None:
        if media.purpose == Purpose.AVATAR.value and media.attached_to_id is not None:
            await session.execute(
                update(User)
                .where(User.id == media.attached_to_id, User.avatar_url == self.public_url(media.id, "w256"))
                .values(avatar_url=None)
            )
        if media.purpose == Purpose.CLUB.value and media.attached_to_id is not None:
            for media_column, url_column in (("avatar_media_id", "avatar_url"), ("cover_media_id", "cover_url")):
                await session.execute(
                    update(Club)
                    .where(Club.id == media.attached_to_id, getattr(Club, media_column) == media.id)
                    .values({media_column: None, url_column: None})
                )
        keys = all_keys(media)
        media.status = status.value
        media.status_reason = reason
        media.attached_to_kind = None
        media.attached_to_id = None
        media.variants = {}
        await bus.record(session, bus.MediaDiscarded(media_id=media.id, object_keys=keys))

    # Moderation

    async def report(self, caller: AccessClaims, media_id: uuid.UUID, request: ReportRequest) -> ReportResult:
        """Open (or return the caller's existing) moderation case on a ready item the caller can see."""
        async with self._sessions.begin() as session:
            media = await session.get(Media, media_id)
            if media is None or media.status != MediaStatus.READY.value:
                raise NotFound("no such media", code="media_not_found")
            if media.owner_id == caller.user_id:
                raise InvalidInput("you cannot report your own media", code="own_media")
            case_id = await session.scalar(
                select(ModerationCase.id).where(
                    ModerationCase.media_id == media_id, ModerationCase.reporter_id == caller.user_id
                )
            )
            if case_id is None:
                case = ModerationCase(media_id=media_id, reporter_id=caller.user_id, reason=request.reason)
                session.add(case)
                await session.flush()
                case_id = case.id
        return ReportResult(case_id=ids.encode(ids.Prefix.MODERATION_CASE, case_id), status=CaseStatus.OPEN.value)

    async def moderation_queue(self, caller: AccessClaims, cursor: str | None, limit: int | None) -> Page[QueueItem]:
        """Items awaiting review or reported, oldest first."""
        self._require_moderator(caller)
        size = clamp_limit(limit)
        reported = exists().where(ModerationCase.media_id == Media.id, ModerationCase.status == CaseStatus.OPEN.value)
        query = select(Media).where(
            or_(
                Media.status == MediaStatus.PENDING_REVIEW.value,
                and_(Media.status == MediaStatus.READY.value, reported),
            )
        )
        if cursor is not None:
            query = query.where(Media.id > decode_cursor(cursor, CursorKey).id)
        async with self._reads() as session:
            rows = list(await session.scalars(query.order_by(Media.id).limit(size + 1)))
            reasons: dict[uuid.UUID, list[str]] = {}
            if rows:
                cases = await session.execute(
                    select(ModerationCase.media_id, ModerationCase.reason)
                    .where(
                        ModerationCase.media_id.in_([m.id for m in rows]),
                        ModerationCase.status == CaseStatus.OPEN.value,
                    )
                    .order_by(ModerationCase.id)
                )
                for mid, reason in cases:
                    reasons.setdefault(mid, []).append(reason)
        page = make_page(rows, size, lambda m: CursorKey(id=m.id))
        return Page(
            items=[
                QueueItem(
                    media=self.view(m), open_reports=len(reasons.get(m.id, [])), report_reasons=reasons.get(m.id, [])
                )
                for m in page.items
            ],
            next_cursor=page.next_cursor,
        )

    async def moderate(
        self, caller: AccessClaims, media_id: uuid.UUID, action: ModerationAction, decision: ModerationDecision
    ) -> ModerationResult:
        """Approve or reject an item under review or reported; resolves its open cases and writes the audit log."""
        self._require_moderator(caller)
        now = self._clock()
        async with self._sessions.begin() as session:
            media = await session.scalar(select(Media).where(Media.id == media_id).with_for_update())
            if media is None or media.status in _HIDDEN:
                raise NotFound("no such media", code="media_not_found")
            previous = media.status
            if previous not in (MediaStatus.PENDING_REVIEW.value, MediaStatus.READY.value):
                raise Conflict(f"media that is {previous} cannot be moderated", code="not_moderatable")
            if action is ModerationAction.APPROVE:
                media.status = MediaStatus.READY.value
            else:
                await self._discard(session, media, MediaStatus.REJECTED, decision.reason or "rejected by a moderator")
            await session.execute(
                update(ModerationCase)
                .where(ModerationCase.media_id == media_id, ModerationCase.status == CaseStatus.OPEN.value)
                .values(status=CaseStatus.RESOLVED.value, resolved_at=now)
            )
            session.add(
                MediaAuditEntry(
                    media_id=media_id,
                    moderator_id=caller.user_id,
                    action=action.value,
                    reason=decision.reason,
                    previous_status=previous,
                )
            )
        return ModerationResult(id=ids.encode(ids.Prefix.MEDIA, media_id), status=media.status)

    def _require_moderator(self, caller: AccessClaims) -> None:
        if not is_moderator(caller):
            raise PermissionDenied("moderators only", code="moderator_required")

    # Lifecycle

    async def sweep_abandoned(self, *, older_than: timedelta = ABANDONED_AFTER, batch: int = 200) -> int:
        """Delete ``pending`` uploads created more than ``older_than`` ago, objects first; returns how many."""
        cutoff = self._clock() - older_than
        removed = 0
        while True:
            async with self._sessions.begin() as session:
                rows = list(
                    await session.scalars(
                        select(Media)
                        .where(Media.status == MediaStatus.PENDING.value, Media.created_at < cutoff)
                        .order_by(Media.created_at)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not rows:
                    return removed
                # A late upload may have landed; its object goes with the row.
                await self._storage.delete([m.object_key for m in rows])
                await session.execute(delete(Media).where(Media.id.in_([m.id for m in rows])))
                removed += len(rows)
            log.info("media.swept_abandoned", count=len(rows))

    async def purge_discarded(self, media_id: uuid.UUID, object_keys: Sequence[str]) -> None:
        """Remove a discarded item's objects; a deleted item's row goes too, a rejected one stays for the record."""
        await self._storage.delete(list(object_keys))
        async with self._sessions.begin() as session:
            await session.execute(delete(Media).where(Media.id == media_id, Media.status == MediaStatus.DELETED.value))

    async def _owned(self, session: AsyncSession, owner_id: uuid.UUID, media_id: uuid.UUID) -> Media:
        media = await session.get(Media, media_id)
        if media is None or media.owner_id != owner_id or media.status in _HIDDEN:
            raise NotFound("no such media", code="media_not_found")
        return media
