"""``<data_dir>/.lock``: one owner per data directory (a stack, or a reaper cleaning up after a dead one)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from shared.dev.process import EngineError

LOCK_FILE = ".lock"


class DataDirLock:
    """An exclusive ``flock`` on the data directory, released when closed or when the holder dies."""

    def __init__(self, data_dir: Path, role: str) -> None:
        self.path = data_dir / LOCK_FILE
        self.role = role
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether we hold the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if free; return whether we got it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.role}\n".encode())
        self._fd = fd
        return True

    def acquire_within(self, timeout: float) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to let go; return whether we got it."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def acquire(self, *, wait_for_reaper: float = 15.0) -> None:
        """Take the lock, waiting while a reaper finishes; fail at once if a live stack holds it."""
        deadline = time.monotonic() + wait_for_reaper
        while not self.try_acquire():
            holder = self.holder()
            if "reaper" not in holder or time.monotonic() > deadline:
                raise EngineError(
                    f"{self.path.parent} is in use by another running stack ({holder or 'unknown process'}); "
                    "stop it or use another data directory"
                )
            time.sleep(0.1)

    def holder(self) -> str:
        """Who holds the lock, as written by them ("<pid> <role>")."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        """Let go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
