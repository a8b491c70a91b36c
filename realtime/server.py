"""Process entry point of the gateway: settings, engines, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import structlog
import uvloop
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from realtime.gateway import Gateway, GatewayOptions
from shared.config import Settings, SettingsError, get_settings
from shared.db.fastread import FastReads, asyncpg_dsn
from shared.db.listen import NotifyListener
from shared.db.session import create_engine, create_read_session_factory, create_session_factory
from shared.domain.auth.access import AccessChecker
from shared.domain.auth.tokens import AccessTokens
from shared.domain.chat.presence import PresenceAnnouncer
from shared.domain.chat.services import ChatLimits, ChatService
from shared.domain.moderation.blocklist import BLOCKLIST_CHANNEL, BlocklistCache
from shared.logging import configure_logging

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("realtime.server")
PROCESS_NAME = "realtime"


def main(
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    init_timeout: float = 5.0,
    heartbeat_interval: float = 20.0,
    drain_grace: float = 0.0,
    send_queue_frames: int = 1024,
    send_queue_bytes: int = 4 * 1024 * 1024,
) -> None:
    """Run the gateway on ``host:port`` until SIGTERM or SIGINT, then drain and return."""
    # Log settings errors in the same JSON shape as everything else.
    configure_logging(process=PROCESS_NAME)
    try:
        settings = get_settings()
    except SettingsError as exc:
        log.error("settings.invalid", error=str(exc))
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_json, process=PROCESS_NAME)
    # websockets logs every rejected handshake (each /health probe) at INFO; keep its warnings only.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    options = GatewayOptions(
        init_timeout=init_timeout,
        heartbeat_interval=heartbeat_interval,
        drain_grace=drain_grace,
        send_queue_frames=send_queue_frames,
        send_queue_bytes=send_queue_bytes,
        allowed_origins=settings.ws_origins,
    )
    exit_code = uvloop.run(_run(settings, host, port, options))
    if exit_code:
        raise SystemExit(exit_code)


async def _run(settings: Settings, host: str, port: int, options: GatewayOptions) -> int:
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_url)
    # Every socket send is one statement on this pool; the listener keeps the blocklist cache honest.
    statements = await FastReads.open(settings)
    blocklist_cache = BlocklistCache(settings.blocklist_cache_seconds)
    listener = NotifyListener(
        asyncpg_dsn(settings.database_url),
        {BLOCKLIST_CHANNEL: blocklist_cache} if settings.blocklist_cache_seconds > 0 else {},
    )
    try:
        sessions = create_session_factory(engine)
        checker = AccessChecker(AccessTokens(settings), create_read_session_factory(engine))
        await listener.start()

        def chat_service(nats: NatsClient) -> ChatService:
            return ChatService(
                sessions,
                redis,
                nats,
                ChatLimits.from_settings(settings),
                statements=statements,
                blocklist_cache=blocklist_cache,
            )

        def announcer(nats: NatsClient) -> PresenceAnnouncer:
            return PresenceAnnouncer(sessions, nats)

        gateway = Gateway(checker, settings.nats_url, chat_service, options, announcer)
        # Installed before start-up, so a SIGTERM during it still ends in a clean exit.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await gateway.start(host, port)
        except Exception as exc:
            # Unreachable NATS or a taken port: fail fast so the supervisor restarts us.
            log.error("gateway.start_failed", error=type(exc).__name__, detail=str(exc))
            return 1
        # What start-up allocated lives as long as the process: keep the collector from scanning it
        # again and again under load (fewer, shorter pauses on the message path).
        gc.freeze()
        await stop.wait()
        await gateway.shutdown()
        return 0
    finally:
        await listener.stop()
        await redis.aclose()
        await statements.close()
        await engine.dispose()
