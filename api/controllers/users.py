"""``/v1/users``: sign-up and profiles."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_201_CREATED

from api.deps import parse_id, provide_runtime, rate_limited
from shared import ids
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessClaims
from shared.domain.users.schemas import (
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
