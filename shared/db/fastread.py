"""A raw asyncpg pool for hot single-statement reads, beside the SQLAlchemy engine.

The ORM costs several hundred microseconds per request in Python (statement
compilation lookup, result processing, identity map); a hot read such as the
caller's own profile is one prepared statement here, decoded straight into a
msgspec Struct by its service.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.config import Settings


def asyncpg_dsn(url: str) -> str:
    """``url`` with the plain ``postgresql`` scheme asyncpg accepts (no SQLAlchemy driver suffix)."""
    return f"postgresql://{url.split('://', 1)[1]}"


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(connection: asyncpg.Connection) -> None:
    # JSON columns come back as Python values, as they do through SQLAlchemy.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")


async def _keep_session(_connection: asyncpg.Connection) -> None:
    # asyncpg's default reset is a round trip (RESET ALL; UNLISTEN *; ...) on every
    # release, doubling the cost of a one-statement read. These connections only run
    # plain autocommit SELECTs (no SET, LISTEN, cursors or advisory locks), and asyncpg
    # still rolls back a transaction left open before calling this.
    return None


class FastReads:
    """A process-wide asyncpg pool; statements are prepared once per connection and reused."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Wrap an open pool (see :meth:`open`)."""
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings) -> FastReads:
        """Connect a pool sized like the SQLAlchemy one."""
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url),
            min_size=1,
            max_size=settings.db_pool_size,
            init=_init_connection,
            reset=_keep_session,
        )
        return cls(pool)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row of one read-only statement (autocommit: no BEGIN/COMMIT round trips)."""
        row: asyncpg.Record | None = await self._pool.fetchrow(query, *args)
        return row

    async def close(self) -> None:
        """Close every connection of the pool."""
        await self._pool.close()
