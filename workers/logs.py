"""Log set-up for the worker process: structlog and arq's stdlib logs through one renderer."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from shared.config import Settings

# arq's "job started" line; its third argument is the job's arguments.
_ARQ_JOB_START = "%6.2fs \u2192 %s(%s)%s"


class RedactJobArguments(logging.Filter):
    """Drops job arguments from arq's start lines: they hold addresses, message bodies and tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the arguments in arq's job-start record; keep every record."""
        if record.msg == _ARQ_JOB_START and isinstance(record.args, tuple) and len(record.args) == 4:
            record.args = (record.args[0], record.args[1], "\u2026", record.args[3])
        return True


def configure_logging(settings: Settings) -> None:
    """JSON lines (or console output when ``log_json`` is off) on stderr at ``settings.log_level``."""
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactJobArguments())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
