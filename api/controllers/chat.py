"""``/v1/chats``: conversations, members, messages, typing and read receipts (seed 000 §2.4)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat.schemas import (
    AddParticipantsRequest,
    ChatView,
    CreateChatRequest,
    EditMessageRequest,
    Message,
    MessageAccepted,
    MessageHistory,
    MessageRemoved,
    ReadRequest,
    ReadState,
    SendMessageRequest,
    TypingAccepted,
    TypingRequest,
    UpdateChatRequest,
)
from shared.domain.chat.services import ChatService
from shared.errors import FieldError, InvalidInput, PermissionDenied
from shared.pagination import Page


class ChatController(Controller):
    """Chats and their messages; the realtime gateway offers the same verbs over a socket."""

    path = "/v1/chats"
    tags = ["chats"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, data: CreateChatRequest, chat_service: ChatService, caller: AccessClaims
    ) -> Response[ChatView]:
        """Start a chat; a direct chat that exists already is returned with 200."""
        view, created = await chat_service.create_chat(caller.user_id, data)
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/")
    async def list_chats(
        self,
        chat_service: ChatService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[ChatView]:
        """The caller's chats, most recently active first, with unread counts and last messages."""
        return await chat_service.list_chats(caller.user_id, cursor, limit)

    @get("/{chat_id:str}")
    async def get_chat(self, chat_id: str, chat_service: ChatService, caller: AccessClaims) -> ChatView:
        """One of the caller's chats."""
        return await chat_service.get_chat(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id))

    @patch("/{chat_id:str}")
    async def update_chat(
        self, chat_id: str, data: UpdateChatRequest, chat_service: ChatService, caller: AccessClaims
    ) -> ChatView:
        """Rename a group chat (its admins) or set ``read_only`` on a group, event or club room (its moderators)."""
        return await chat_service.update_chat(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), data)

    @post("/{chat_id:str}/participants", status_code=HTTP_200_OK)
    async def add_participants(
        self, chat_id: str, data: AddParticipantsRequest, chat_service: ChatService, caller: AccessClaims
    ) -> ChatView:
        """Add members to a group chat (chat admins)."""
        return await chat_service.add_participants(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), data.user_ids)

    @delete("/{chat_id:str}/participants/{user_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove_participant(
        self, chat_id: str, user_id: str, chat_service: ChatService, caller: AccessClaims
    ) -> None:
        """Leave a group chat (your own id) or remove a member (chat admins)."""
        await chat_service.remove_participant(
            caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), parse_id(ids.Prefix.USER, user_id)
        )

    @post("/{chat_id:str}/messages", status_code=HTTP_202_ACCEPTED)
    async def send_message(
        self,
        chat_id: str,
        data: SendMessageRequest,
        chat_service: ChatService,
        caller: AccessClaims,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=64)] = None,
    ) -> MessageAccepted:
        """Store a message and fan it out; resending the same ``client_message_id`` returns the first one."""
        if idempotency_key is not None and idempotency_key != data.client_message_id:
            if data.client_message_id:
                raise InvalidInput(errors=[FieldError("client_message_id", "differs from the Idempotency-Key header")])
            data = msgspec.structs.replace(data, client_message_id=idempotency_key)
        if not data.client_message_id:
            raise InvalidInput(errors=[FieldError("client_message_id", "required (or an Idempotency-Key header)")])
        sent = await chat_service.send_message(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), data)
        return sent.accepted

    @get("/{chat_id:str}/messages")
    async def history(
        self,
        chat_id: str,
        chat_service: ChatService,
        caller: AccessClaims,
        before: int | None = None,
        limit: int | None = None,
    ) -> MessageHistory:
        """Messages before seq ``before``, newest first; ``paging.next_before`` continues."""
        return await chat_service.history(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), before, limit)

    @patch("/{chat_id:str}/messages/{message_id:str}")
    async def edit_message(
        self, chat_id: str, message_id: str, data: EditMessageRequest, chat_service: ChatService, caller: AccessClaims
    ) -> Message:
        """Edit one's own message within 15 minutes of sending it."""
        return await chat_service.edit_message(
            caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), parse_id(ids.Prefix.MESSAGE, message_id), data.content
        )

    @delete("/{chat_id:str}/messages/{message_id:str}", status_code=HTTP_200_OK)
    async def delete_message(
        self, chat_id: str, message_id: str, chat_service: ChatService, caller: AccessClaims
    ) -> MessageRemoved:
        """Delete a message (its sender or a chat admin); it stays as a tombstone."""
        return await chat_service.delete_message(
            caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), parse_id(ids.Prefix.MESSAGE, message_id)
        )

    @post("/{chat_id:str}/typing", status_code=HTTP_200_OK)
    async def typing(
        self, chat_id: str, data: TypingRequest, chat_service: ChatService, caller: AccessClaims
    ) -> TypingAccepted:
        """Tell the chat the caller is (or stopped) typing; it lapses after ``expires_in_ms``."""
        if data.user_id is not None and data.user_id != ids.encode(ids.Prefix.USER, caller.user_id):
            raise PermissionDenied("you can only type as yourself", code="sender_mismatch")
        return await chat_service.set_typing(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), data.is_typing)

    @post("/{chat_id:str}/read", status_code=HTTP_200_OK)
    async def read(self, chat_id: str, data: ReadRequest, chat_service: ChatService, caller: AccessClaims) -> ReadState:
        """Move the caller's read position forward to ``message_id`` (never back)."""
        return await chat_service.mark_read(caller.user_id, parse_id(ids.Prefix.CHAT, chat_id), data.message_id)
