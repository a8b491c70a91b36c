"""``tribe worker``: run the arq worker until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import sys

import structlog
from redis.exceptions import RedisError

from shared.config import SettingsError, env_name, get_settings
from shared.errors import Unavailable
from workers.logs import configure_logging
from workers.settings import create_worker

log = structlog.stdlib.get_logger(__name__)


def main() -> None:
    """Run the worker in this process; returns after a clean shutdown on SIGTERM/SIGINT."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(f"tribe worker: {exc}")
    configure_logging(settings)
    # arq binds its signal handlers to the loop current at construction, so make ours current first.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # handle_signals: SIGTERM/SIGINT stop taking jobs, wait for running ones, then run on_shutdown.
        create_worker(settings, handle_signals=True).run()
    except Unavailable as exc:
        log.error("worker.start_failed", error=exc.detail)
        raise SystemExit(1) from None
    except RedisError as exc:
        # arq connects to Redis itself, before on_startup, so its errors arrive unmapped.
        log.error("worker.start_failed", error=f"cannot reach Redis ({env_name('redis_url')}): {exc}")
        raise SystemExit(1) from None
    finally:
        asyncio.set_event_loop(None)
        loop.close()
