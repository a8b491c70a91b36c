"""The migrations are the schema: they match the models and go down and up again."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import asyncpg_url
from shared.db.migrate import downgrade, upgrade
from shared.db.models import Base


async def test_models_and_migrations_do_not_drift(engine_env: dict[str, str]) -> None:
    engine = create_async_engine(asyncpg_url(engine_env["TRIBE_DATABASE_URL"]))

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_upgrade_again(engine_env: dict[str, str]) -> None:
    server_url = engine_env["TRIBE_DATABASE_URL"]
    name = f"tribe_migrations_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = server_url.rsplit("/", 1)[0] + f"/{name}"
        # Alembic's env runs its own event loop, so it goes on a thread.
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(downgrade, url, "base")
        check = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            tables = await check.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            assert {t["tablename"] for t in tables} <= {"alembic_version"}
        finally:
            await check.close()
        await asyncio.to_thread(upgrade, url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
