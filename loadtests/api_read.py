"""Benchmark: a typical authenticated read (``GET /v1/users/me``) against a Litestar hello-world.

Fair by construction: both apps are started by the same ``granian`` command line
(ASGI, one worker, uvloop, no websockets, no access log), driven by the same
client with the same connections and durations, in alternating rounds (the order
flips each round) so drift on a noisy machine hits both alike. Each round is a
warm-up, a closed-loop peak run, then a run paced at 70% of that peak for the
latency figures. The best round of each server is reported, with every round's
ratio. Targets (GUIDE §7): read throughput >= 0.5x hello-world; read p99 <= 50 ms
at 70% of its peak.

    uv run python -m loadtests.api_read [--seconds 10] [--connections 32] [--rounds 2]

Engines are started embedded in a temporary folder unless ``TRIBE_*`` URLs are set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from loadtests.httpload import LoadResult, run_load
from shared.db.migrate import upgrade
from shared.dev.process import free_port
from shared.dev.stack import EmbeddedStack

HOST = "127.0.0.1"
console = Console()


def serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one server process in its own session, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(url: str, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group and wait."""
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=15)


def login(api: str) -> str:
    """A fresh account's access token."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": "benchmark-password", "display_name": "Bench"}
    httpx.post(f"{api}/v1/users", json=body).raise_for_status()
    answer = httpx.post(f"{api}/v1/auth/login", json={"email": email, "password": body["password"]})
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


async def measure(
    port: int, path: str, headers: dict[str, str], connections: int, seconds: float
) -> tuple[LoadResult, LoadResult]:
    """A warm-up, a closed-loop peak run, then a run paced at 70% of that peak."""
    await run_load(HOST, port, path, headers=headers, connections=connections, seconds=1)
    peak = await run_load(HOST, port, path, headers=headers, connections=connections, seconds=seconds)
    paced = await run_load(
        HOST, port, path, headers=headers, connections=connections, seconds=seconds, rate=peak.rps * 0.7
    )
    return peak, paced


def granian(target: str, port: int) -> list[str]:
    """The one server command line both apps run under."""
    return [
        *("granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--workers", "1", "--no-ws"),
        *("--host", HOST, "--port", str(port), target),
    ]


def best(runs: list[tuple[LoadResult, LoadResult]]) -> tuple[LoadResult, LoadResult]:
    """The round with the highest peak (the least disturbed by other load on the machine)."""
    return max(runs, key=lambda run: run[0].rps)


def main() -> None:
    """Run both servers, measure both in alternating rounds, print the table and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()

    hello_runs: list[tuple[LoadResult, LoadResult]] = []
    read_runs: list[tuple[LoadResult, LoadResult]] = []
    with tempfile.TemporaryDirectory(prefix="tribe-bench-") as tmp:
        data = Path(tmp)
        stack = EmbeddedStack(data / "engines", external=os.environ)
        env = {**os.environ, **stack.start(), "TRIBE_LOG_LEVEL": "WARNING"}
        env.setdefault("TRIBE_JWT_SECRET", uuid.uuid4().hex * 2)
        servers: list[subprocess.Popen[bytes]] = []
        try:
            upgrade(env["TRIBE_DATABASE_URL"])
            api_port, hello_port = free_port(), free_port()
            servers.append(serve(granian("api.app:create_app", api_port), env, data / "api.log"))
            servers.append(serve(granian("loadtests.hello_app:create_app", hello_port), env, data / "hello.log"))
            wait_ready(f"http://{HOST}:{api_port}/health/ready")
            wait_ready(f"http://{HOST}:{hello_port}/hello")
            auth = {"Authorization": f"Bearer {login(f'http://{HOST}:{api_port}')}"}

            def run_hello() -> None:
                hello_runs.append(asyncio.run(measure(hello_port, "/hello", {}, options.connections, options.seconds)))

            def run_read() -> None:
                read_runs.append(
                    asyncio.run(measure(api_port, "/v1/users/me", auth, options.connections, options.seconds))
                )

            for round_no in range(options.rounds):
                for run in (run_hello, run_read) if round_no % 2 == 0 else (run_read, run_hello):
                    run()
        finally:
            for server in servers:
                stop(server)
            stack.stop()

    hello_peak, hello_paced = best(hello_runs)
    read_peak, read_paced = best(read_runs)
    table = Table(
        title=f"Authenticated read vs hello-world ({options.connections} connections, "
        f"{options.seconds:g} s per run, best of {options.rounds} rounds)"
    )
    for column in ("server", "peak req/s", "errors", "p50 ms at 70%", "p99 ms at 70%"):
        table.add_column(column, justify="right")
    for name, peak, paced, runs in (
        ("hello-world (baseline)", hello_peak, hello_paced, hello_runs),
        ("GET /v1/users/me", read_peak, read_paced, read_runs),
    ):
        table.add_row(
            name,
            f"{peak.rps:,.0f}",
            str(sum(a.errors + b.errors for a, b in runs)),
            f"{paced.percentile(50):.1f}",
            f"{paced.percentile(99):.1f}",
        )
    console.print(table)
    per_round = ", ".join(
        f"{r[0].rps / h[0].rps:.2f}x" if h[0].rps else "n/a" for h, r in zip(hello_runs, read_runs, strict=True)
    )
    ratio = read_peak.rps / hello_peak.rps if hello_peak.rps else 0.0
    console.print(f"read/hello throughput ratio: [bold]{ratio:.2f}x[/bold] (target >= 0.50x; per round: {per_round})")
    console.print(f"read p99 at 70% of peak: [bold]{read_paced.percentile(99):.1f} ms[/bold] (target <= 50 ms)")


if __name__ == "__main__":
    main()
