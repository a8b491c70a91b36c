"""Chat moderation: reporting messages, the case queue, and the global and per-club blocklists."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import parse_id, provide_runtime
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.moderation.schemas import (
    BlocklistTermCreate,
    BlocklistTermView,
    CaseView,
    ReportRequest,
    ResolveRequest,
)
from shared.domain.moderation.services import ModerationService
from shared.pagination import Page


def provide_moderation_service(state: State) -> ModerationService:
    """The moderation service over the process's sessions and chat service (it publishes through it)."""
    runtime = provide_runtime(state)
    return ModerationService(runtime.sessions, runtime.chat)


_DEPENDENCIES = {"moderation_service": Provide(provide_moderation_service, sync_to_thread=False)}


class MessageReportController(Controller):
    """``POST /v1/chats/{chat_id}/messages/{message_id}/report``: members report a message."""

    path = "/v1/chats"
    tags = ["moderation"]
    dependencies = _DEPENDENCIES

    @post("/{chat_id:str}/messages/{message_id:str}/report", status_code=HTTP_201_CREATED)
    async def report(
        self,
        chat_id: str,
        message_id: str,
        data: ReportRequest,
        moderation_service: ModerationService,
        caller: AccessClaims,
    ) -> Response[CaseView]:
        """Open a moderation case on a message; repeating an open report returns it with 200."""
        view, created = await moderation_service.report(
            caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), parse_id(ids.Prefix.MESSAGE, message_id), data
        )
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


class ChatModerationController(Controller):
    """``/v1/moderation``: the case queue and the platform-wide blocklist."""

    path = "/v1/moderation"
    tags = ["moderation"]
    dependencies = _DEPENDENCIES

    @get("/cases")
    async def list_cases(
        self,
        moderation_service: ModerationService,
        caller: AccessClaims,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[CaseView]:
        """Cases the caller may review (all for platform moderators), newest first."""
        return await moderation_service.list_cases(caller, status, cursor, limit)

    @post("/cases/{case_id:str}/resolve", status_code=HTTP_200_OK)
    async def resolve(
        self, case_id: str, data: ResolveRequest, moderation_service: ModerationService, caller: AccessClaims
    ) -> CaseView:
        """Approve, remove or dismiss; the chat gets ``system.moderation`` when a message is shown or removed."""
        return await moderation_service.resolve(caller, parse_id(ids.Prefix.CASE, case_id), data)

    @get("/blocklist")
    async def list_terms(
        self,
        moderation_service: ModerationService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[BlocklistTermView]:
        """The platform-wide blocklist (platform moderators and admins)."""
        return await moderation_service.list_terms(caller, None, cursor, limit)

    @post("/blocklist", status_code=HTTP_201_CREATED)
    async def add_term(
        self, data: BlocklistTermCreate, moderation_service: ModerationService, caller: AccessClaims
    ) -> BlocklistTermView:
        """Add a term to the platform-wide blocklist."""
        return await moderation_service.add_term(caller, None, data)

    @delete("/blocklist/{term_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_term(self, term_id: str, moderation_service: ModerationService, caller: AccessClaims) -> None:
        """Remove a term from the platform-wide blocklist."""
        await moderation_service.delete_term(caller, None, parse_id(ids.Prefix.BLOCKLIST_TERM, term_id))


class ClubBlocklistController(Controller):
    """``/v1/clubs/{club_id}/blocklist``: a club's own terms (owner, admins, moderators)."""

    path = "/v1/clubs/{club_id:str}/blocklist"
    tags = ["moderation"]
    dependencies = _DEPENDENCIES

    @get("/")
    async def list_terms(
        self,
        club_id: str,
        moderation_service: ModerationService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[BlocklistTermView]:
        """The club's blocklist."""
        return await moderation_service.list_terms(caller, parse_id(ids.Prefix.CLUB, club_id), cursor, limit)

    @post("/", status_code=HTTP_201_CREATED)
    async def add_term(
        self, club_id: str, data: BlocklistTermCreate, moderation_service: ModerationService, caller: AccessClaims
    ) -> BlocklistTermView:
        """Add a term to the club's blocklist (applies in the club's room)."""
        return await moderation_service.add_term(caller, parse_id(ids.Prefix.CLUB, club_id), data)

    @delete("/{term_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_term(
        self, club_id: str, term_id: str, moderation_service: ModerationService, caller: AccessClaims
    ) -> None:
        """Remove a term from the club's blocklist."""
        await moderation_service.delete_term(
            caller, parse_id(ids.Prefix.CLUB, club_id), parse_id(ids.Prefix.BLOCKLIST_TERM, term_id)
        )
