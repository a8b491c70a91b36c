"""The owner-death safety net: stops a stack's engines when the process that started them dies.

The stack starts ``python -m shared.dev.reaper DATA_DIR`` with a pipe on its stdin and keeps the
write end. The reaper blocks reading it. A clean ``stop()`` writes a byte before closing it, and
the reaper just exits. End-of-file without that byte means the owner is gone, however it died
(SIGKILL, OOM, a crashed test runner), and then it stops every process still recorded in
``DATA_DIR/pids.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.dev.lock import DataDirLock
from shared.dev.process import PidFile, stop_recorded

PIDS_FILE = "pids.json"
# Matches the stack's own stop budget.
STOP_BUDGET = 10.0
LOCK_WAIT = 5.0
# What the owner writes before it closes the pipe after a clean stop.
STOPPED_CLEANLY = b"."


def main() -> None:
    """Wait for the owner to go away, then stop whatever it left running."""
    data_dir = Path(sys.argv[1])
    told = b""
    try:
        while chunk := sys.stdin.buffer.read(1):
            told += chunk
    except (OSError, KeyboardInterrupt):
        pass
    if told == STOPPED_CLEANLY:
        return
    lock = DataDirLock(data_dir, "reaper")
    # The dead owner's lock goes away a moment after its pipe does (the kernel closes files in
    # no promised order), so wait a little. If a new stack holds the directory instead, it stops
    # the leftovers itself and the record now lists its own engines, which must not be touched.
    if not lock.acquire_within(LOCK_WAIT):
        return
    try:
        stopped = stop_recorded(PidFile(data_dir / PIDS_FILE), STOP_BUDGET)
    finally:
        lock.release()
    if stopped:
        print(f"owner gone; stopped {', '.join(stopped)}", flush=True)


if __name__ == "__main__":
    main()
