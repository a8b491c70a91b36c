"""Helpers for gateway tests: a real gateway process, accounts in Postgres, tokens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utcnow
from shared.config import Settings
from shared.domain.auth.models import AuthSession
from shared.domain.auth.tokens import AccessTokens
from shared.domain.users.models import AccountStatus, User

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayProcess:
    """``python -m realtime`` in a subprocess, with its log captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "realtime", "--port", str(self.port), *extra_args],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

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

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until ``/health`` answers 200, or fail with the process log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.http_url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.log()}")

    def terminate(self) -> None:
        """Send SIGTERM (the graceful path)."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """The exit code, waiting at most ``timeout`` seconds."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Make sure the process is gone (SIGTERM, then SIGKILL) and close the log."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


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
