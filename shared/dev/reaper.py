"""The owner-death safety net: stops a stack's engines when the process that started them dies.

The stack starts ``python -m shared.dev.reaper DATA_DIR`` with a pipe on its stdin and keeps the
write end. The reaper blocks reading it; end-of-file means the owner is gone, however it died
(SIGKILL, OOM, a crashed test runner), and then it stops every process still recorded in
``DATA_DIR/pids.json``. A clean ``stop()`` empties that record first, so the reaper has nothing to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.dev.lock import DataDirLock
from shared.dev.process import PidFile, stop_recorded

PIDS_FILE = "pids.json"
# Matches the stack's own stop budget.
STOP_BUDGET = 10.0


def main() -> None:
    """Wait for the owner to go away, then stop whatever it left running."""
    data_dir = Path(sys.argv[1])
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, KeyboardInterrupt):
        pass
    lock = DataDirLock(data_dir, "reaper")
    # If a new stack already took the data directory, it stops the leftovers itself (and the
    # record now lists its own engines, which must not be touched).
    if not lock.try_acquire():
        return
    try:
        stopped = stop_recorded(PidFile(data_dir / PIDS_FILE), STOP_BUDGET)
    finally:
        lock.release()
    if stopped:
        print(f"owner gone; stopped {', '.join(stopped)}", flush=True)


if __name__ == "__main__":
    main()
