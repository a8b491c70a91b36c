"""``tribe worker``: run the arq worker until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import sys

from shared.config import SettingsError, get_settings
from workers.logs import configure_logging
from workers.settings import create_worker


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
    finally:
        asyncio.set_event_loop(None)
        loop.close()
