"""A raw asyncpg pool for hot single statements (reads, and the chat send), beside the SQLAlchemy engine.

The ORM costs several hundred microseconds per request in Python (statement
compilation lookup, result processing, identity map); a hot read such as the
caller's own profile is one prepared statement here, decoded straight into a
msgspec Struct by its service.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Protocol

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


class FastReads:
    """A small pool of asyncpg connections for one-statement autocommit reads.

    Deliberately thinner than ``asyncpg.Pool``: that one shields every release in a new
    task and resets the session with a round trip, which together cost about as much
    as the read itself. Here a connection is taken from a free list, runs one
    statement (prepared once per connection by asyncpg's statement cache) and is
    handed straight to the next waiter. A connection whose statement was cancelled or
    lost is closed rather than reused, so no half-read protocol state leaks; one whose
    statement the server refused is clean and goes back.
    """

    def __init__(self, dsn: str, max_size: int) -> None:
        """Connections to ``dsn`` are opened on demand, at most ``max_size`` at once."""
        self._dsn = dsn
        self._max = max(1, max_size)
        self._idle: list[Any] = []  # asyncpg.Connection
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._opened = 0
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings) -> FastReads:
        """A pool sized like the SQLAlchemy one; connections open on first use, like the engine's,
        so a process started while Postgres is down still serves ``/health/ready`` (503)."""
        return cls(asyncpg_dsn(settings.database_url), settings.db_pool_size)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row of one read-only statement (autocommit: no BEGIN/COMMIT round trips)."""
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Every row of one statement (autocommit, like :meth:`fetchrow`)."""
        rows: list[asyncpg.Record] = await self._run("fetch", query, args)
        return rows

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        connection = await self._acquire()
        try:
            result = await getattr(connection, method)(query, *args)
        except asyncpg.PostgresError:
            # The server refused the statement (e.g. a unique violation) and is ready for the next one.
            self._release(connection)
            raise
        except BaseException:
            self._discard(connection)
            raise
        self._release(connection)
        return result

    async def close(self) -> None:
        """Close the idle connections; busy ones are closed as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close(timeout=2)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("fast-read pool closed"))

    async def _connect(self) -> Any:
        self._opened += 1
        try:
            connection = await asyncpg.connect(self._dsn)
            await _init_connection(connection)
        except BaseException:
            self._opened -= 1
            raise
        return connection

    async def _acquire(self) -> Any:
        while True:
            if self._closed:
                raise ConnectionError("fast-read pool closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.is_closed():
                    return connection
                self._opened -= 1
            if self._opened < self._max:
                return await self._connect()
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                return await waiter
            except _Retry:
                continue
            except asyncio.CancelledError:
                # Handed a connection just as we were cancelled: pass it on, do not leak it.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._release(waiter.result())
                raise

    def _release(self, connection: Any) -> None:
        if self._closed or connection.is_closed():
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _discard(self, connection: Any) -> None:
        self._opened -= 1
        connection.terminate()
        # A waiter may now open a connection of its own instead of waiting forever.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_Retry())
                return


class _Retry(Exception):
    """Tells a waiter that a slot freed up: try to acquire again."""


class Statements(Protocol):
    """Runs one statement in autocommit (an implicit transaction of its own): :class:`FastReads` or a fallback."""

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row of ``query``."""
        ...

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Every row of ``query``."""
        ...


class SessionStatements:
    """:class:`Statements` on the asyncpg driver under a SQLAlchemy pool connection (for services built without
    a :class:`FastReads`, as some tests build them). SQLAlchemy begins its transactions lazily on its own
    executes, so a statement run on the driver directly is in autocommit, like one on :class:`FastReads`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Statements borrow a connection of ``sessions``' engine for their duration."""
        self._sessions = sessions

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """The first row of ``query``."""
        async with self._sessions() as session:
            raw = await (await session.connection()).get_raw_connection()
            row: asyncpg.Record | None = await raw.driver_connection.fetchrow(query, *args)  # type: ignore[union-attr]
            return row

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Every row of ``query``."""
        async with self._sessions() as session:
            raw = await (await session.connection()).get_raw_connection()
            rows: list[asyncpg.Record] = await raw.driver_connection.fetch(query, *args)  # type: ignore[union-attr]
            return rows
