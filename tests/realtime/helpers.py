"""Helpers for gateway tests: a real gateway process, accounts in Postgres, tokens."""

from __future__ import annotations

import signal
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.models import AuthSession
from shared.domain.auth.tokens import AccessTokens
from shared.domain.users.models import AccountStatus, User
from tests.support import free_port, start_process, stop_process, wait_http


class GatewayProcess:
    """``python -m realtime`` in its own process group, with its log captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process = start_process(["realtime", "--port", str(self.port), *extra_args], env, log_path)

    @property
    def ws_url(self) -> str:
        """The general socket URL."""
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def http_url(self) -> str:
        """The HTTP base URL of the same port."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until ``/health`` answers 200, or fail with the process log."""
        wait_http(f"{self.http_url}/health", timeout=timeout, process=self.process, log=self.log_path)

    def terminate(self) -> None:
        """Send SIGTERM to the gateway alone (the graceful path)."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """The exit code, waiting at most ``timeout`` seconds."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> int:
        """Make sure the process is gone (SIGTERM, then SIGKILL); its exit code."""
        return stop_process(self.process)


@dataclass(frozen=True, slots=True)
class Account:
    """A user row and one of its login sessions."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: tuple[str, ...] = ("user",)


async def create_account(
    sessions: async_sessionmaker[AsyncSession],
    *,
    status: AccountStatus = AccountStatus.ACTIVE,
    revoked: bool = False,
) -> Account:
    """Insert a user and a login session for it, straight into the database."""
    now = utcnow()
    user = User(
        email=f"rt-{uuid.uuid4().hex}@example.test",
        password_hash="not-a-real-hash",
        display_name="Realtime Tester",
        status=status.value,
    )
    async with sessions() as session, session.begin():
        session.add(user)
        await session.flush()
        auth_session = AuthSession(
            user_id=user.id,
            client="ios",
            created_at=now,
            revoked_at=now if revoked else None,
            revoked_reason="logout" if revoked else None,
        )
        session.add(auth_session)
        await session.flush()
        return Account(user_id=user.id, session_id=auth_session.id)


def issue_token(settings: Settings, account: Account, now: datetime | None = None) -> str:
    """An access token for ``account`` signed with ``settings``' secret."""
    return AccessTokens(settings).issue(account.user_id, account.session_id, account.roles, now or utcnow())
