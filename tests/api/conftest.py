"""Fixtures for API tests: users made through the real endpoints, and direct database access."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.config import load_settings
from shared.db.session import create_engine, create_session_factory
from tests.api.payment_support import MakeCard, create_card
from tests.support import start_process, stop_process

_counter = itertools.count()
PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    """A registered and logged-in user."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header for this user."""
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(tag: str = "user") -> str:
    """An email no other test uses."""
    return f"{tag}-{next(_counter)}-{uuid.uuid4().hex[:8]}@example.com"


MakeAccount = Callable[..., Awaitable[Account]]


@pytest.fixture
def make_account(client: httpx.AsyncClient) -> MakeAccount:
    """Register and log in a fresh user through the API."""

    async def make(**fields: Any) -> Account:
        body = {"email": unique_email(), "password": PASSWORD, "display_name": "Test User", **fields}
        created = await client.post("/v1/users", json=body)
        assert created.status_code == 201, created.text
        login = await client.post("/v1/auth/login", json={"email": body["email"], "password": body["password"]})
        assert login.status_code == 200, login.text
        tokens = login.json()
        return Account(
            id=created.json()["id"],
            email=body["email"].lower(),
            password=body["password"],
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )

    return make


@pytest.fixture
async def db(engine_env: dict[str, str]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, for arranging state the API cannot (suspensions, roles)."""
    engine = create_engine(load_settings(engine_env))
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="package")
def worker(engine_env: dict[str, str], data_dir: Path) -> Iterator[None]:
    """A real ``tribe worker`` process (outbox relay and jobs) while this package's tests run."""
    log = data_dir / "logs" / "worker.log"
    process = start_process(["shared.cli", "worker"], engine_env, log)
    try:
        yield
    finally:
        assert stop_process(process) == 0, log.read_text()[-3000:]


@pytest.fixture
def make_card(engine_env: dict[str, str]) -> MakeCard:
    """Card payment methods made in localstripe, by number (``tests.api.payment_support`` names the test cards)."""

    async def make(number: str) -> str:
        return await create_card(engine_env, number)

    return make


@pytest.fixture
def webhook_secret(engine_env: dict[str, str]) -> str:
    """The secret the API checks Stripe webhook signatures with."""
    return load_settings(engine_env).stripe_webhook_secret


WaitForMail = Callable[[str, str], Awaitable[EmailMessage]]


@pytest.fixture
def wait_for_mail(mail_dir: Path, worker: None) -> WaitForMail:
    """The newest mail to an address whose subject contains some text, waiting up to 15 s."""

    async def wait(to: str, subject: str) -> EmailMessage:
        async with asyncio.timeout(15):
            while True:
                for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
                    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
                    assert isinstance(message, EmailMessage)
                    if message["To"] == to and subject in str(message["Subject"]):
                        return message
                await asyncio.sleep(0.05)

    return wait


def mailed_token(message: EmailMessage, prefix: str) -> str:
    """The one-time token of kind ``prefix`` in a mail's text."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"\b{prefix}_[A-Za-z0-9_-]{{20,}}", body.get_content())
    assert match, body.get_content()
    return match.group(0)
