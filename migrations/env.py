"""Alembic environment: runs migrations on the asyncpg engine from the Tribe settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import get_settings
from shared.db.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    # An explicit URL (tests, drift checks) wins over the process settings.
    url = config.get_main_option("sqlalchemy.url")
    return url or get_settings().async_database_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
