"""Log set-up for the worker process: the shared JSON logs, minus arq's job arguments."""

from __future__ import annotations

import logging

from shared import logging as shared_logging
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
    """The shared log set-up, plus redaction of arq's job arguments."""
    shared_logging.configure_logging(
        settings.log_level, settings.log_json, process="worker", filters=[RedactJobArguments()]
    )
