"""``/v1/auth``: login, refresh, logout, password reset, email verification."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.deps import rate_limited
from shared.domain.auth.schemas import (
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
    VerifyEmailRequest,
)
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessClaims


class AuthController(Controller):
    """Token lifecycle endpoints; all but logout work without a token."""

    path = "/v1/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=HTTP_200_OK,
        exclude_from_auth=True,
        dependencies={"limit": Provide(rate_limited("login"))},
    )
    async def login(self, data: LoginRequest, auth_service: AuthService, limit: None) -> TokenPair:
        """Exchange email and password for an access and a refresh token."""
        return await auth_service.login(data.email, data.password)

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        exclude_from_auth=True,
        dependencies={"limit": Provide(rate_limited("refresh"))},
    )
    async def refresh(self, data: RefreshRequest, auth_service: AuthService, limit: None) -> TokenPair:
        """Spend a refresh token for a new pair (single use; reuse revokes the session)."""
        return await auth_service.refresh(data.refresh_token)

    @post("/logout", status_code=HTTP_204_NO_CONTENT)
    async def logout(self, data: RefreshRequest, auth_service: AuthService, caller: AccessClaims) -> None:
        """Revoke the session the refresh token belongs to."""
        await auth_service.logout(caller.user_id, data.refresh_token)

    @post(
        "/password-reset",
        status_code=HTTP_202_ACCEPTED,
        exclude_from_auth=True,
        dependencies={"limit": Provide(rate_limited("reset"))},
    )
    async def request_reset(self, data: PasswordResetRequest, auth_service: AuthService, limit: None) -> None:
        """Mail a reset link if the account exists; always 202."""
        await auth_service.request_password_reset(data.email)

    @post(
        "/password-reset/confirm",
        status_code=HTTP_204_NO_CONTENT,
        exclude_from_auth=True,
        dependencies={"limit": Provide(rate_limited("reset"))},
    )
    async def confirm_reset(self, data: PasswordResetConfirm, auth_service: AuthService, limit: None) -> None:
        """Set a new password with the mailed token; signs out every session."""
        await auth_service.confirm_password_reset(data.token, data.new_password)

    @post("/verify-email", status_code=HTTP_204_NO_CONTENT, exclude_from_auth=True)
    async def verify_email(self, data: VerifyEmailRequest, auth_service: AuthService) -> None:
        """Confirm the email address with the token mailed at sign-up."""
        await auth_service.verify_email(data.token)
