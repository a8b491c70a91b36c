"""Worker logging keeps job arguments (addresses, bodies, tokens) out of the logs."""

from __future__ import annotations

import logging

from workers.logs import RedactJobArguments


def test_arq_job_start_line_loses_its_arguments() -> None:
    # The exact call arq's worker makes when a job starts.
    record = logging.LogRecord(
        "arq.worker",
        logging.INFO,
        __file__,
        1,
        "%6.2fs \u2192 %s(%s)%s",
        (0.01, "send_email:1:send_email", "{'to': 'alice@example.com', 'body': 'reset token abc'}", ""),
        None,
    )

    assert RedactJobArguments().filter(record)

    line = record.getMessage()
    assert "alice@example.com" not in line
    assert "abc" not in line
    assert "send_email:1:send_email" in line


def test_other_records_pass_untouched() -> None:
    record = logging.LogRecord("arq.worker", logging.INFO, __file__, 1, "%s done", ("job",), None)

    assert RedactJobArguments().filter(record)
    assert record.getMessage() == "job done"
