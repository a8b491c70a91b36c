"""A small keep-alive HTTP/1.1 load generator: closed-loop peak runs and paced runs with latency percentiles.

Written on raw asyncio streams so the client costs as little CPU as possible; it
only understands ``Content-Length`` responses, which is all our servers send.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What one run measured."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency at percentile ``p`` (0-100) in milliseconds."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def build_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    """The raw bytes of one GET request on a kept-alive connection."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str,
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    connections: int = 32,
    seconds: float = 5.0,
    rate: float | None = None,
) -> LoadResult:
    """Drive ``GET path`` for ``seconds``; closed loop at full speed, or paced at ``rate`` requests/s."""
    request = build_request(host, port, path, headers or {})
    result = LoadResult()
    deadline = time.perf_counter() + seconds
    interval = connections / rate if rate else 0.0

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        next_send = time.perf_counter() + (interval * index / connections if interval else 0.0)
        try:
            while (now := time.perf_counter()) < deadline:
                if interval:
                    if now < next_send:
                        await asyncio.sleep(next_send - now)
                    next_send += interval
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.requests += 1
                if status != 200:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    result.seconds = time.perf_counter() - started
    return result
