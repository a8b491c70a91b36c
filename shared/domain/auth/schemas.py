"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256, description="At least 10 characters.")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
OpaqueToken = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Email and password."""

    email: Email
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class TokenPair(msgspec.Struct):
    """A fresh access token and the refresh token that replaces the one presented."""

    access_token: str
    refresh_token: str
    user_id: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The refresh token to spend."""

    refresh_token: OpaqueToken


class PasswordResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Where to send the reset link."""

    email: Email


class PasswordResetConfirm(msgspec.Struct, forbid_unknown_fields=True):
    """The mailed token and the new password."""

    token: OpaqueToken
    new_password: Password


class VerifyEmailRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The mailed verification token."""

    token: OpaqueToken
