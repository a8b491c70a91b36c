"""Fixtures for API tests: users made through the real endpoints, and direct database access."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.config import load_settings
from shared.db.session import create_engine, create_session_factory

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
