"""End to end: ``tribe up`` starts everything, serves, stops cleanly, and keeps data across restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, free_port, wait_http

STARTUP_TIMEOUT = 180


def descendants(pid: int) -> set[int]:
    """Every live process whose ancestry leads to ``pid`` (children run in their own sessions)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class TribeUp:
    """One ``tribe up`` run in a data directory."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.api_port = free_port()
        self.realtime_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBE_")}
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shared.cli",
                    "up",
                    "--data-dir",
                    str(data_dir),
                    "--api-port",
                    str(self.api_port),
                    "--realtime-port",
                    str(self.realtime_port),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.api_port}"

    def wait_ready(self) -> None:
        wait_http(f"{self.url}/health/ready", STARTUP_TIMEOUT, self.process, self.log)
        wait_http(f"http://127.0.0.1:{self.realtime_port}/health", 30, self.process, self.log)

    def stop(self) -> float:
        """SIGTERM and return how long the whole tree took to go away."""
        tree = descendants(self.process.pid)
        assert tree, "tribe up started no child processes"
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in tree if alive(p)]
        assert survivors == [], f"processes left behind: {survivors}\n{self.log.read_text()[-3000:]}"
        return time.monotonic() - started


def test_tribe_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    email = "e2e@example.com"
    password = "e2e-password-123"

    first = TribeUp(data_dir, tmp_path / "up-1.log")
    try:
        first.wait_ready()
        created = httpx.post(
            f"{first.url}/v1/users", json={"email": email, "password": password, "display_name": "E2E"}
        )
        assert created.status_code == 201, created.text
        login = httpx.post(f"{first.url}/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200
        output = first.log.read_text()
        for label in ("API docs", "Realtime gateway", "Mail folder", "S3"):
            assert label in output
    finally:
        stop_seconds = first.stop()
    assert first.process.returncode == 0
    assert stop_seconds < 10, f"stopping took {stop_seconds:.1f} s"

    second = TribeUp(data_dir, tmp_path / "up-2.log")
    try:
        second.wait_ready()
        login = httpx.post(f"{second.url}/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = httpx.get(f"{second.url}/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["id"] == created.json()["id"]
    finally:
        second.stop()
