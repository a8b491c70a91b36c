"""``/v1/users``: sign-up and profiles."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import parse_id, provide_account_deletion, provide_runtime, rate_limited
from shared import ids
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessClaims
from shared.domain.users.deletion import AccountDeletionService
from shared.domain.users.schemas import (
    DeleteAccountRequest,
    OwnProfile,
    ProfileUpdate,
    PublicProfile,
    RegisteredUser,
    RegisterRequest,
    Success,
)
from shared.domain.users.services import UserService


class UserController(Controller):
    """Accounts and profiles."""

    path = "/v1/users"
    tags = ["users"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        exclude_from_auth=True,
        dependencies={"limit": Provide(rate_limited("register"))},
    )
    async def register(self, data: RegisterRequest, auth_service: AuthService, limit: None) -> RegisteredUser:
        """Create an account; a verification email follows."""
        return await auth_service.register(data)

    @get("/me")
    async def me(self, request: Request[AccessClaims, Any, Any]) -> OwnProfile:
        """The caller's full profile."""
        # The hottest read: no dependency injection (two providers cost a task group per
        # request); the auth middleware has already put the verified caller on the request.
        return await provide_runtime(request.app.state).users.get_own_profile(request.user)

    @get("/{user_id:str}")
    async def profile(self, user_id: str, user_service: UserService, caller: AccessClaims) -> PublicProfile:
        """A user's public profile."""
        return await user_service.get_public_profile(caller, parse_id(ids.Prefix.USER, user_id))

    @patch("/{user_id:str}")
    async def update(
        self, user_id: str, data: ProfileUpdate, user_service: UserService, caller: AccessClaims
    ) -> Success:
        """Change profile fields (yourself, or anyone as an admin)."""
        await user_service.update_profile(caller, parse_id(ids.Prefix.USER, user_id), data)
        return Success()

    @delete(
        "/{user_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        dependencies={"account_deletion": Provide(provide_account_deletion, sync_to_thread=False)},
    )
    async def delete_account(
        self,
        user_id: str,
        data: DeleteAccountRequest,
        account_deletion: AccountDeletionService,
        caller: AccessClaims,
    ) -> None:
        """Delete (anonymise) your own account; the password is asked again."""
        await account_deletion.delete_account(caller, parse_id(ids.Prefix.USER, user_id), data.password)
