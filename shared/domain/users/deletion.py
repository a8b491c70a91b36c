"""Account deletion: the account is anonymised in place, and everything it held is let go.

The row stays (events, posts and ledgers point at it) but says nothing about the person any more.
In one transaction: open RSVPs are cancelled through the RSVP engine (seats freed, waitlists
promoted), media is discarded (``purge_media`` jobs remove the objects after commit), sessions are
revoked and refresh tokens, one-time tokens, devices and the calendar feed are dropped. The Stripe
subscription and any creator or club tier subscriptions are cancelled first, through the payments
services, so a Stripe failure leaves the
account intact for a retry instead of leaving a deleted account paying.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.domain.auth.models import AuthSession, OneTimeToken, RefreshToken
from shared.domain.auth.passwords import verify_password
from shared.domain.auth.tokens import AccessClaims
from shared.domain.events.services import EventService
from shared.domain.media.services import MediaService
from shared.domain.notifications.models import Device
from shared.domain.payments.member_tiers import MemberTierService
from shared.domain.payments.services import PaymentService
from shared.domain.users.models import AccountStatus, Role, User
from shared.errors import NotFound, PermissionDenied

DELETED_NAME = "Deleted user"
# Never a deliverable address (RFC 2606 ``.invalid``), unique per account, already lower case.
DELETED_EMAIL_DOMAIN = "deleted.invalid"
# Not an argon2 hash: no password ever verifies against it.
UNUSABLE_PASSWORD_HASH = "!deleted"


def deleted_email(user_id: uuid.UUID) -> str:
    """The placeholder address a deleted account keeps (the column is unique and required)."""
    return f"deleted-{user_id.hex}@{DELETED_EMAIL_DOMAIN}"


class AccountDeletionService:
    """``DELETE /v1/users/{id}``: the owner deletes their own account with their password."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        events: EventService,
        media: MediaService,
        payments: PaymentService,
        member_tiers: MemberTierService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._events = events
        self._media = media
        self._payments = payments
        self._member_tiers = member_tiers
        self._clock = clock

    async def delete_account(self, actor: AccessClaims, user_id: uuid.UUID, password: str) -> None:
        """Check the password, cancel the subscription, then anonymise and release everything at once."""
        async with self._sessions() as session:
            user = await session.get(User, user_id)
        if user is None or user.status == AccountStatus.DELETED:
            raise NotFound("no such user", code="user_not_found")
        if actor.user_id != user_id:
            raise PermissionDenied("you can only delete your own account", code="not_your_account")
        if not await verify_password(user.password_hash, password):
            raise PermissionDenied("the password is incorrect", code="wrong_password")
        # NotFound: there is no current subscription to cancel.
        with contextlib.suppress(NotFound):
            await self._payments.cancel(actor)
        await self._member_tiers.cancel_all(actor)
        async with self._sessions.begin() as session:
            # The row lock makes concurrent deletions of one account serial; the second finds it deleted.
            locked = await session.scalar(
                select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
            )
            if locked is None or locked.status == AccountStatus.DELETED:
                raise NotFound("no such user", code="user_not_found")
            await self._events.release_user(session, user_id)
            await self._media.discard_all_of_owner(session, user_id)
            await self._sign_out_everywhere(session, user_id)
            now = self._clock()
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    email=deleted_email(user_id),
                    email_verified_at=None,
                    password_hash=UNUSABLE_PASSWORD_HASH,
                    display_name=DELETED_NAME,
                    bio=None,
                    city=None,
                    avatar_url=None,
                    interests=[],
                    timezone="UTC",
                    icebreaker_prompt_id=None,
                    settings={},
                    roles=[Role.USER.value],
                    signup_source=None,
                    last_active_at=None,
                    status=AccountStatus.DELETED.value,
                    deleted_at=now,
                )
            )

    async def _sign_out_everywhere(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        now = self._clock()
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="account_deleted")
        )
        families = select(AuthSession.id).where(AuthSession.user_id == user_id)
        await session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(families)))
        await session.execute(delete(OneTimeToken).where(OneTimeToken.user_id == user_id))
        await session.execute(delete(Device).where(Device.user_id == user_id))
