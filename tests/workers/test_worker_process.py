"""``python -m workers`` as a real process: it starts, beats, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from workers.jobs.system import read_heartbeat

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_worker_process_stops_cleanly(
    engine_env: dict[str, str], arq_redis: ArqRedis, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            cwd=REPO_ROOT,
            env={**os.environ, **engine_env},
            stdout=log,
            stderr=log,
        )
    try:
        # The start-up heartbeat carries the process id: proof it connected everything and runs jobs.
        me = f"{socket.gethostname()}:{process.pid}"
        async with asyncio.timeout(30):
            while (beat := await read_heartbeat(arq_redis)) is None or beat.worker != me:
                assert process.returncode is None, log_path.read_text()
                await asyncio.sleep(0.1)

        process.send_signal(stop_signal)
        returncode = await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = log_path.read_text()
    assert returncode == 0, output
    assert "worker.stopped" in output
    assert "Traceback" not in output
