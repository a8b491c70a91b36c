"""Accounts and auth: sign-up, login, refresh rotation, logout, password reset, email verification."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth import passwords
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken, TokenPurpose
from shared.domain.auth.schemas import TokenPair
from shared.domain.auth.secrets import hash_secret, new_secret
from shared.domain.auth.tokens import AccessTokens
from shared.domain.social.services import redeem_invite_code
from shared.domain.users.models import AccountStatus, User
from shared.domain.users.schemas import RegisteredUser, RegisterRequest
from shared.domain.users.services import normalize_interests
from shared.errors import Conflict, FieldError, InvalidInput, Unauthenticated


class AuthService:
    """Owns the account lifecycle and every token; each verb is one transaction."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        tokens: AccessTokens,
        clock: Callable[[], datetime] = utcnow,
        on_revoke: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._tokens = tokens
        self._clock = clock
        # Told (after commit) whose sessions were revoked, so this process's access cache
        # forgets them before the response; other processes hear NOTIFY access_changed.
        self._on_revoke = on_revoke or (lambda _user_id: None)

    async def register(self, data: RegisterRequest) -> RegisteredUser:
        """Create an account and mail its verification link; 409 ``email_taken`` on a duplicate."""
        email = _valid_email(data.email)
        display_name = data.display_name.strip()
        if not display_name:
            raise InvalidInput(errors=[FieldError("display_name", "must not be blank")])
        if self._settings.invite_only and data.invite_code is None:
            raise InvalidInput(
                "sign-up is by invitation only: an invite code is required",
                code="invalid_invite_code",
                errors=[FieldError("invite_code", "required")],
            )
        password_hash = await passwords.hash_password(data.password)
        now = self._clock()
        # Invite-only sign-ups are refused above without a code, so every account created here is active.
        status = AccountStatus.ACTIVE
        user = User(
            id=ids.uuid7(),
            email=email,
            password_hash=password_hash,
            display_name=display_name,
            city=(data.city or "").strip() or None,
            interests=normalize_interests(data.interests),
            signup_source=data.signup_source,
            status=status.value,
            roles=["user"],
            timezone="UTC",
            settings={},
            created_at=now,
            updated_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(user)
            try:
                await session.flush()
            except IntegrityError as exc:
                if "uq_users_email" in str(exc.orig):
                    raise Conflict("an account with this email already exists", code="email_taken") from None
                raise
            invited_by = (
                await redeem_invite_code(session, data.invite_code, user.id, now)
                if data.invite_code is not None
                else None
            )
            token = self._one_time_token(session, user.id, TokenPurpose.EMAIL_VERIFY, now)
            await bus.record(
                session,
                bus.UserRegistered(user_id=user.id, invited_by=invited_by),
                bus.EmailRequested(
                    to=email,
                    subject="Confirm your email for Tribe",
                    body=_verify_body(display_name, self._link("verify-email", token), token),
                ),
            )
        return RegisteredUser(
            id=ids.encode(ids.Prefix.USER, user.id),
            display_name=user.display_name,
            city=user.city,
            interests=user.interests,
            created_at=now,
        )

    async def login(self, email: str, password: str, client: str | None = None) -> TokenPair:
        """A new session for valid credentials; the same 401 for unknown email and wrong password."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        ok = await passwords.verify_password(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthenticated("email or password is incorrect", code="invalid_credentials")
        if user.status == AccountStatus.SUSPENDED:
            raise Unauthenticated("this account is suspended", code="account_suspended")
        now = self._clock()
        async with self._sessions.begin() as session:
            if passwords.needs_rehash(user.password_hash):
                new_hash = await passwords.hash_password(password)
                await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
            family = AuthSession(id=ids.uuid7(), user_id=user.id, client=client, created_at=now)
            session.add(family)
            await session.flush()
            return self._issue_pair(session, user, family.id, now)

    async def refresh(self, raw_token: str) -> TokenPair:
        """Spend a refresh token for a new pair; a spent token revokes its whole family."""
        token_hash = hash_secret(raw_token)
        now = self._clock()
        async with self._sessions.begin() as session:
            # The conditional UPDATE is the race arbiter: of two concurrent refreshes, one gets the row.
            # The winner issues its pair in the same transaction, so a loser (blocked on the row until
            # that commit) revokes a family that already holds the new pair: the winner always answers 200.
            spent = (
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
                    .values(used_at=now)
                    .returning(RefreshToken.session_id, RefreshToken.expires_at)
                )
            ).one_or_none()
            if spent is not None:
                user, revoked_at = (
                    await session.execute(
                        select(User, AuthSession.revoked_at)
                        .join(AuthSession, AuthSession.user_id == User.id)
                        .where(AuthSession.id == spent.session_id)
                    )
                ).one()
                if revoked_at is not None or spent.expires_at <= now:
                    raise Unauthenticated("refresh token expired or revoked", code="invalid_refresh_token")
                if user.status == AccountStatus.SUSPENDED:
                    raise Unauthenticated("this account is suspended", code="account_suspended")
                return self._issue_pair(session, user, spent.session_id, now)
            session_id = await session.scalar(
                select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
            )
            if session_id is None:
                raise Unauthenticated("unknown refresh token", code="invalid_refresh_token")
            revoked_user = await self._revoke_family(session, session_id, now, reason="refresh_reuse")
        if revoked_user is not None:
            self._on_revoke(revoked_user)
        # Raised after commit so the revocation sticks.
        raise Unauthenticated("refresh token already used; session revoked", code="refresh_token_reused")

    async def logout(self, user_id: uuid.UUID, raw_token: str) -> None:
        """Revoke the family of the caller's refresh token; someone else's token is refused."""
        async with self._sessions.begin() as session:
            session_id = await session.scalar(
                select(RefreshToken.session_id)
                .join(AuthSession, AuthSession.id == RefreshToken.session_id)
                .where(RefreshToken.token_hash == hash_secret(raw_token), AuthSession.user_id == user_id)
            )
            if session_id is None:
                raise Unauthenticated("unknown refresh token", code="invalid_refresh_token")
            await self._revoke_family(session, session_id, self._clock(), reason="logout")
        self._on_revoke(user_id)

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link if the account exists; says nothing either way."""
        now = self._clock()
        async with self._sessions.begin() as session:
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None or user.status == AccountStatus.SUSPENDED:
                return
            # Only the newest link works: older unused ones are retired.
            await session.execute(
                update(OneTimeToken)
                .where(
                    OneTimeToken.user_id == user.id,
                    OneTimeToken.purpose == TokenPurpose.PASSWORD_RESET.value,
                    OneTimeToken.used_at.is_(None),
                )
                .values(used_at=now)
            )
            token = self._one_time_token(session, user.id, TokenPurpose.PASSWORD_RESET, now)
            await bus.record(
                session,
                bus.EmailRequested(
                    to=user.email,
                    subject="Reset your Tribe password",
                    body=_reset_body(
                        user.display_name,
                        self._link("reset-password", token),
                        token,
                        self._settings.password_reset_ttl_minutes,
                    ),
                ),
            )

    async def confirm_password_reset(self, raw_token: str, new_password: str) -> None:
        """Set a new password with a valid reset token and sign out every session."""
        password_hash = await passwords.hash_password(new_password)
        now = self._clock()
        async with self._sessions.begin() as session:
            user_id = await self._spend_one_time_token(session, raw_token, TokenPurpose.PASSWORD_RESET, now)
            await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
            await session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="password_reset")
            )
        self._on_revoke(user_id)

    async def verify_email(self, raw_token: str) -> None:
        """Mark the email verified with the token mailed at sign-up."""
        now = self._clock()
        async with self._sessions.begin() as session:
            user_id = await self._spend_one_time_token(session, raw_token, TokenPurpose.EMAIL_VERIFY, now)
            await session.execute(
                update(User).where(User.id == user_id, User.email_verified_at.is_(None)).values(email_verified_at=now)
            )

    def _issue_pair(self, session: AsyncSession, user: User, session_id: uuid.UUID, now: datetime) -> TokenPair:
        raw, token_hash = new_secret("rt")
        session.add(
            RefreshToken(
                id=ids.uuid7(),
                session_id=session_id,
                token_hash=token_hash,
                created_at=now,
                expires_at=now + timedelta(days=self._settings.refresh_token_ttl_days),
            )
        )
        return TokenPair(
            access_token=self._tokens.issue(user.id, session_id, tuple(user.roles), now),
            refresh_token=raw,
            user_id=ids.encode(ids.Prefix.USER, user.id),
            expires_in=int(self._tokens.ttl.total_seconds()),
        )

    def _one_time_token(self, session: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose, now: datetime) -> str:
        ttl = (
            timedelta(minutes=self._settings.password_reset_ttl_minutes)
            if purpose is TokenPurpose.PASSWORD_RESET
            else timedelta(hours=self._settings.email_verify_ttl_hours)
        )
        raw, token_hash = new_secret("pr" if purpose is TokenPurpose.PASSWORD_RESET else "ev")
        session.add(
            OneTimeToken(
                id=ids.uuid7(),
                user_id=user_id,
                purpose=purpose.value,
                token_hash=token_hash,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return raw

    async def _spend_one_time_token(
        self, session: AsyncSession, raw_token: str, purpose: TokenPurpose, now: datetime
    ) -> uuid.UUID:
        user_id: uuid.UUID | None = await session.scalar(
            update(OneTimeToken)
            .where(
                OneTimeToken.token_hash == hash_secret(raw_token),
                OneTimeToken.purpose == purpose.value,
                OneTimeToken.used_at.is_(None),
                OneTimeToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(OneTimeToken.user_id)
        )
        if user_id is None:
            raise InvalidInput(
                "the token is invalid, expired or already used",
                code="invalid_token",
                errors=[FieldError("token", "invalid, expired or already used")],
            )
        return user_id

    @staticmethod
    async def _revoke_family(
        session: AsyncSession, session_id: uuid.UUID, now: datetime, reason: str
    ) -> uuid.UUID | None:
        """Revoke one session; its user if it was still live."""
        revoked: uuid.UUID | None = await session.scalar(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .returning(AuthSession.user_id)
        )
        return revoked

    def _link(self, path: str, token: str) -> str:
        return f"{self._settings.public_app_url.rstrip('/')}/{path}?token={token}"


def _valid_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(errors=[FieldError("email", str(exc))]) from None
    return info.normalized.lower()


def _verify_body(name: str, link: str, token: str) -> str:
    return (
        f"Hi {name},\n\nWelcome to Tribe! Confirm your email address by opening this link:\n\n{link}\n\n"
        f"Or enter this code in the app: {token}\n"
    )


def _reset_body(name: str, link: str, token: str, minutes: int) -> str:
    return (
        f"Hi {name},\n\nSomeone asked to reset the password of your Tribe account. "
        f"If it was you, open this link within {minutes} minutes:\n\n{link}\n\n"
        f"Or enter this code in the app: {token}\n\nIf it was not you, ignore this email.\n"
    )
