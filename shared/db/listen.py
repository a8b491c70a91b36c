"""One Postgres ``LISTEN`` connection per process that keeps in-process caches honest.

A cache registers for a channel that triggers ``NOTIFY`` when its source rows change. It is
told when the channel is heard (``listening(True)``: start caching from empty) and when it may
not be (``listening(False)``: the connection dropped, notifications may be lost, stop caching
and drop everything), and gets each notification's payload. So a cache serves entries only
while a live connection would have told it of every change since they were read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any, Protocol

import asyncpg
import structlog

_LISTEN_RETRY_S = 2.0
_LISTEN_PING_S = 15.0

log = structlog.get_logger("db.listen")


class NotifiedCache(Protocol):
    """What a cache kept honest by NOTIFY implements."""

    def listening(self, up: bool) -> None:
        """The channel is heard from now on (``True``) or may miss notifications (``False``); drop everything."""
        ...

    def notified(self, payload: str) -> None:
        """A source row changed; ``payload`` says which entries to forget."""
        ...


class NotifyListener:
    """Keeps one ``LISTEN`` connection for every registered channel; each cache is on only while it is up."""

    def __init__(self, dsn: str, caches: Mapping[str, NotifiedCache]) -> None:
        """``dsn`` is a plain ``postgresql://`` URL for asyncpg; ``caches`` maps channel names to caches."""
        self._dsn = dsn
        self._caches = dict(caches)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False

    async def start(self, wait_seconds: float = 5.0) -> None:
        """Start listening; wait up to ``wait_seconds`` for the first connection (the caches stay off otherwise)."""
        if not self._caches:
            return
        self._task = asyncio.create_task(self._run(), name="notify-listener")
        try:
            await asyncio.wait_for(self._connected.wait(), wait_seconds)
        except TimeoutError:
            log.warning("listen.slow", channels=list(self._caches), waited_s=wait_seconds)

    async def stop(self) -> None:
        """Stop listening and turn the caches off."""
        self._stopping = True
        self._set(False)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set(self, up: bool) -> None:
        for cache in self._caches.values():
            cache.listening(up)

    async def _run(self) -> None:
        while not self._stopping:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=_LISTEN_RETRY_S * 2)
                lost = asyncio.Event()
                connection.add_termination_listener(functools.partial(_set_on_termination, lost))
                for channel, cache in self._caches.items():
                    await connection.add_listener(channel, functools.partial(_forward, cache))
                # Whatever was cached before this connection may have missed notifications.
                self._set(True)
                self._connected.set()
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), _LISTEN_PING_S)
                    except TimeoutError:
                        # A silently dead socket never terminates: prove the link is alive.
                        await connection.fetchval("SELECT 1", timeout=_LISTEN_RETRY_S * 2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "listen.lost", channels=list(self._caches), error=type(exc).__name__, retry_in_s=_LISTEN_RETRY_S
                )
            finally:
                self._set(False)
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            if not self._stopping:
                await asyncio.sleep(_LISTEN_RETRY_S)


def _forward(cache: NotifiedCache, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
    cache.notified(payload)


def _set_on_termination(event: asyncio.Event, _connection: Any) -> None:
    event.set()
