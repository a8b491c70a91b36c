"""``/v1/notifications`` and ``/v1/devices``: the in-app list, read state, preferences, push devices."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.notifications.schemas import (
    DeviceRegistration,
    DeviceView,
    NotificationView,
    Preferences,
    PreferencesUpdate,
    ReadAllResult,
    UnreadCount,
    Unsubscribed,
)
from shared.domain.notifications.services import NotificationService
from shared.pagination import Page


class NotificationController(Controller):
    """The caller's notifications and how they are delivered."""

    path = "/v1/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_notifications(
        self,
        notification_service: NotificationService,
        caller: AccessClaims,
        unread_only: bool = False,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[NotificationView]:
        """The caller's notifications, newest first."""
        return await notification_service.list(caller.user_id, unread_only=unread_only, cursor=cursor, limit=limit)

    @get("/unread-count")
    async def unread_count(self, notification_service: NotificationService, caller: AccessClaims) -> UnreadCount:
        """How many notifications are unread."""
        return await notification_service.unread_count(caller.user_id)

    @post("/{notification_id:str}/read", status_code=HTTP_200_OK)
    async def mark_read(
        self, notification_id: str, notification_service: NotificationService, caller: AccessClaims
    ) -> NotificationView:
        """Mark one notification read."""
        return await notification_service.mark_read(caller.user_id, parse_id(ids.Prefix.NOTIFICATION, notification_id))

    @post("/read-all", status_code=HTTP_200_OK)
    async def mark_all_read(self, notification_service: NotificationService, caller: AccessClaims) -> ReadAllResult:
        """Mark every notification read."""
        return await notification_service.mark_all_read(caller.user_id)

    @get("/preferences")
    async def preferences(self, notification_service: NotificationService, caller: AccessClaims) -> Preferences:
        """Every type and channel switch, quiet hours, digest and content-free push settings."""
        return await notification_service.preferences(caller.user_id)

    @put("/preferences")
    async def update_preferences(
        self, data: PreferencesUpdate, notification_service: NotificationService, caller: AccessClaims
    ) -> Preferences:
        """Change switches and settings; absent fields stay as they are."""
        return await notification_service.update_preferences(caller.user_id, data)

    @get("/unsubscribe", exclude_from_auth=True)
    async def unsubscribe(self, token: str, notification_service: NotificationService) -> Unsubscribed:
        """The link in every notification email: turns that type's email off."""
        return await notification_service.unsubscribe(token)

    @post("/unsubscribe", exclude_from_auth=True, status_code=HTTP_200_OK)
    async def unsubscribe_one_click(self, token: str, notification_service: NotificationService) -> Unsubscribed:
        """RFC 8058 one-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click`` to the link)."""
        return await notification_service.unsubscribe(token)


class DeviceController(Controller):
    """Push tokens of the caller's devices."""

    path = "/v1/devices"
    tags = ["notifications"]

    @post("/", status_code=HTTP_201_CREATED)
    async def register(
        self, data: DeviceRegistration, notification_service: NotificationService, caller: AccessClaims
    ) -> DeviceView:
        """Register a push token (Expo) for the caller."""
        return await notification_service.register_device(caller.user_id, data)

    @delete("/{token:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, token: str, notification_service: NotificationService, caller: AccessClaims) -> None:
        """Forget one of the caller's push tokens."""
        await notification_service.remove_device(caller.user_id, token)
