"""Fixtures for gateway tests: one shared gateway process and direct database access."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.config import Settings, load_settings
from shared.db.session import create_engine, create_session_factory
from tests.realtime.helpers import Account, GatewayProcess, create_account

# Short, so the "no init frame" case does not wait the production 5 s.
TEST_INIT_TIMEOUT = "1"


@pytest.fixture(scope="session")
def settings(engine_env: dict[str, str]) -> Settings:
    """The settings the gateway process runs with."""
    return load_settings(engine_env)


@pytest.fixture(scope="session")
async def db_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, for arranging rows."""
    engine = create_engine(settings)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def gateway(engine_env: dict[str, str], data_dir: Path) -> Iterator[GatewayProcess]:
    """A gateway process shared by the tests that do not stop it."""
    process = GatewayProcess(engine_env, data_dir / "logs" / "realtime.log", "--init-timeout", TEST_INIT_TIMEOUT)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
async def account(db_sessions: async_sessionmaker[AsyncSession]) -> Account:
    """A fresh active user with a live session."""
    return await create_account(db_sessions)
