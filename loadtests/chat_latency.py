"""Chat latency benchmark: N sockets in group chats, M messages/s for T seconds, against a baseline.

Usage::

    uv run python -m loadtests.chat_latency --connections 1000 --group-size 10 --rate 100 --duration 15

It starts the embedded engines in a temporary directory (or uses ``TRIBE_*`` URLs from the
environment), migrates, creates the users, sessions and group chats straight in Postgres,
starts ``--gateways`` real gateway processes, connects every client (round robin over the
gateways), sends ``--rate`` ``message.send`` frames per second from random members for
``--duration`` seconds, and reports send→ack and send→delivered-to-every-other-member
latency, deliveries per second, lost and duplicated deliveries, and gateway RSS per idle
connection. In the same run it repeats the load against a bare ``websockets`` broadcast
server (no auth, storage or NATS) and prints our figures as ratios to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "benchmark-secret-that-is-long-enough-0123456789"
CONNECT_CONCURRENCY = 100
# client_message_id prefix of the events the fan-out phase publishes straight to NATS.
FANOUT_PREFIX = "fan-"
SCRIPT = str(Path(__file__).resolve())


# Clients


@dataclass
class Client:
    """One benchmark socket and the chat it belongs to."""

    index: int
    chat_id: str
    url: str
    init: bytes
    ws: ClientConnection | None = None


@dataclass
class Results:
    """What one run measured."""

    label: str
    sent: int = 0
    acked: int = 0
    errors: int = 0
    ack_ms: list[float] = field(default_factory=list)
    delivered_ms: list[float] = field(default_factory=list)
    deliveries: int = 0
    duplicates: int = 0
    lost: int = 0
    seconds: float = 0.0
    rss_per_connection_kib: float | None = None
    # Server CPU time spent during the load, per message sent: robust to a busy machine.
    cpu_ms_per_message: float | None = None
    # The fan-out phase (gateways only): socket deliveries, wall time, and gateway CPU seconds spent.
    fan_deliveries: int = 0
    fan_seconds: float = 0.0
    fan_cpu_seconds: float = 0.0


class Load:
    """Drives the clients: sends, and matches acks and deliveries to sends by client_message_id."""

    def __init__(self, clients: list[Client], members: dict[str, list[int]], label: str) -> None:
        self.clients = clients
        self.members = members
        self.results = Results(label)
        self.sent_at: dict[str, float] = {}
        self.sender: dict[str, int] = {}
        self.receivers: dict[str, set[int]] = defaultdict(set)
        self.complete: set[str] = set()
        self.all_delivered = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self.finished = False
        self.fan_last = 0.0
        self.fan_expected = 0
        self.fan_done = asyncio.Event()

    async def connect_all(self) -> None:
        """Open and initialise every socket, ``CONNECT_CONCURRENCY`` at a time."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(client: Client) -> None:
            async with gate:
                ws = await connect(client.url, open_timeout=30, compression=None, max_size=2**20)
                await ws.send(client.init.decode())
                ack = msgspec.json.decode(await ws.recv())
                if ack.get("type") != "connection.ack":
                    raise RuntimeError(f"client {client.index} not acknowledged: {ack}")
                client.ws = ws

        await asyncio.gather(*(one(c) for c in self.clients))
        self._readers = [asyncio.create_task(self._read(c)) for c in self.clients]

    async def _read(self, client: Client) -> None:
        assert client.ws is not None
        try:
            async for raw in client.ws:
                now = time.perf_counter()
                frame = msgspec.json.decode(raw)
                kind = frame.get("type")
                if kind == "message.new":
                    cmid = frame["message"]["client_message_id"]
                    if cmid.startswith(FANOUT_PREFIX):
                        self.results.fan_deliveries += 1
                        self.fan_last = now
                        if self.results.fan_deliveries >= self.fan_expected:
                            self.fan_done.set()
                        continue
                    if client.index == self.sender.get(cmid):
                        continue
                    got = self.receivers[cmid]
                    if client.index in got:
                        self.results.duplicates += 1
                        continue
                    got.add(client.index)
                    self.results.deliveries += 1
                    if len(got) == len(self.members[client.chat_id]) - 1 and cmid in self.sent_at:
                        self.results.delivered_ms.append((now - self.sent_at[cmid]) * 1000)
                        self.complete.add(cmid)
                        if self.finished and len(self.complete) >= self.results.sent:
                            self.all_delivered.set()
                elif kind == "ack":
                    cmid = frame["client_message_id"]
                    self.results.acked += 1
                    self.results.ack_ms.append((now - self.sent_at[cmid]) * 1000)
                elif kind == "error":
                    self.results.errors += 1
        except websockets.ConnectionClosed:
            pass

    async def run(self, rate: float, duration: float) -> None:
        """Send ``rate`` messages per second for ``duration`` seconds, then wait for stragglers."""
        interval = 1.0 / rate
        started = time.perf_counter()
        next_at = started
        count = int(rate * duration)
        for n in range(count):
            client = random.choice(self.clients)
            cmid = f"b{n}-{uuid.uuid4().hex[:8]}"
            frame = {
                "type": "message.send",
                "chat_id": client.chat_id,
                "client_message_id": cmid,
                "content": {"type": "text", "text": f"benchmark message {n}"},
            }
            self.sender[cmid] = client.index
            self.sent_at[cmid] = time.perf_counter()
            assert client.ws is not None
            await client.ws.send(msgspec.json.encode(frame).decode())
            self.results.sent += 1
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        self.results.seconds = time.perf_counter() - started
        self.finished = True
        if len(self.complete) < self.results.sent:
            try:
                async with asyncio.timeout(10):
                    await self.all_delivered.wait()
            except TimeoutError:
                pass
        expected = sum(len(self.members[self.clients[self.sender[c]].chat_id]) - 1 for c in self.sent_at)
        self.results.lost = expected - self.results.deliveries

    async def close(self) -> None:
        """Close every socket."""
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None), return_exceptions=True)
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


# The baseline: a bare websockets broadcast server


async def serve_baseline(port: int) -> None:
    """Acknowledge each send and broadcast it to its chat; nothing else (no auth, storage, NATS)."""
    groups: dict[str, set[ServerConnection]] = defaultdict(set)
    seqs: dict[str, int] = defaultdict(int)

    async def handler(ws: ServerConnection) -> None:
        init = msgspec.json.decode(await ws.recv())
        chats: list[str] = init["chats"]
        for chat in chats:
            groups[chat].add(ws)
        await ws.send('{"type":"connection.ack"}')
        try:
            async for raw in ws:
                frame = msgspec.json.decode(raw)
                if frame.get("type") != "message.send":
                    continue
                chat = frame["chat_id"]
                seqs[chat] += 1
                message_id = uuid.uuid4().hex
                new = {
                    "type": "message.new",
                    "chat_id": chat,
                    "seq": seqs[chat],
                    "message": {
                        "id": message_id,
                        "client_message_id": frame["client_message_id"],
                        "content": frame["content"],
                    },
                }
                websockets.broadcast(groups[chat], msgspec.json.encode(new).decode())
                ack = {
                    "type": "ack",
                    "message_id": message_id,
                    "client_message_id": frame["client_message_id"],
                    "seq": seqs[chat],
                }
                await ws.send(msgspec.json.encode(ack).decode())
        finally:
            for chat in chats:
                groups[chat].discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**16):
        await asyncio.Future()


# Arranging the Tribe side


async def create_population(database_url: str, settings: Any, connections: int, group_size: int) -> list[Any]:
    """Users, sessions and group chats straight in Postgres; returns (user_id, token, chat_id) per client."""
    from sqlalchemy import insert

    from shared.clock import utcnow
    from shared.db.session import create_engine, create_session_factory
    from shared.domain.auth.models import AuthSession
    from shared.domain.auth.tokens import AccessTokens
    from shared.domain.chat.models import Chat, ChatParticipant
    from shared.domain.users.models import User
    from shared.ids import Prefix, encode, uuid7

    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    tokens = AccessTokens(settings)
    now = utcnow()
    users = [uuid7() for _ in range(connections)]
    auth = [uuid7() for _ in range(connections)]
    chats = [uuid7() for _ in range((connections + group_size - 1) // group_size)]
    async with sessions.begin() as session:
        await session.execute(
            insert(User),
            [
                {"id": u, "email": f"bench-{u.hex}@example.test", "password_hash": "x", "display_name": "Bench"}
                for u in users
            ],
        )
        await session.execute(
            insert(AuthSession),
            [{"id": s, "user_id": u, "client": "bench", "created_at": now} for u, s in zip(users, auth, strict=True)],
        )
        await session.execute(
            insert(Chat), [{"id": c, "type": "group", "title": "bench", "created_by": users[0]} for c in chats]
        )
        await session.execute(
            insert(ChatParticipant),
            [{"chat_id": chats[i // group_size], "user_id": u, "role": "member"} for i, u in enumerate(users)],
        )
    await engine.dispose()
    return [
        (u, tokens.issue(u, s, ("user",), now), encode(Prefix.CHAT, chats[i // group_size]))
        for i, (u, s) in enumerate(zip(users, auth, strict=True))
    ]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child Python process from the project root, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def measure(
    label: str,
    urls: list[str],
    population: list[tuple[str, bytes]],
    pids: list[int],
    rate: float,
    duration: float,
    fanout: tuple[str, int] | None = None,
) -> Results:
    """Connect everyone, measure idle RSS, run the load, (with ``fanout``) the fan-out phase, close."""
    members: dict[str, list[int]] = defaultdict(list)
    clients = []
    for i, (chat_id, init) in enumerate(population):
        clients.append(Client(index=i, chat_id=chat_id, url=urls[i % len(urls)], init=init))
        members[chat_id].append(i)
    before = sum(rss_kib(p) for p in pids)
    load = Load(clients, members, label)
    await load.connect_all()
    await asyncio.sleep(1.0)
    after = sum(rss_kib(p) for p in pids)
    load.results.rss_per_connection_kib = (after - before) / len(clients)
    cpu_before = sum(cpu_seconds(p) for p in pids)
    try:
        await load.run(rate, duration)
        cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
        load.results.cpu_ms_per_message = cpu * 1000 / max(load.results.sent, 1)
        if fanout is not None:
            await fan_out(load, fanout[0], fanout[1], pids)
    finally:
        await load.close()
    return load.results


async def fan_out(load: Load, nats_url: str, events: int, pids: list[int]) -> None:
    """Publish ``events`` stored-message events straight to NATS, spread over the chats, and time the deliveries.

    This isolates the gateways' fan-out (decode once, encode once, write to every member's socket)
    from storage: each event reaches every member of its chat. Gateway CPU seconds are measured too,
    since on a shared machine the clients, not the gateway, may set the wall-clock pace.
    """
    import nats

    from shared.bus import ChatMessagePosted, chat_subject, encode_event
    from shared.domain.chat.schemas import Message, MessageContent

    chats = list(load.members)
    expected = sum(len(load.members[chats[n % len(chats)]]) for n in range(events))
    load.fan_expected = expected
    client = await nats.connect(nats_url)
    try:
        cpu_before = sum(cpu_seconds(p) for p in pids)
        started = time.perf_counter()
        for n in range(events):
            chat_id = chats[n % len(chats)]
            message = Message(
                id=f"msg_fan{n}",
                chat_id=chat_id,
                seq=1_000_000 + n,
                sender_id="usr_fanout",
                client_message_id=f"{FANOUT_PREFIX}{n}",
                content=MessageContent(text=f"fan-out {n}"),
                sent_at=datetime.now(UTC),
                edited_at=None,
                deleted=False,
                deleted_at=None,
                reply_to=None,
                mentions=[],
                moderation_status="visible",
            )
            await client.publish(chat_subject(chat_id), encode_event(ChatMessagePosted(message=message)))
            if n % 500 == 499:
                await client.flush()
        await client.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await load.fan_done.wait()
        load.results.fan_seconds = max(load.fan_last, started) - started
        load.results.fan_cpu_seconds = sum(cpu_seconds(p) for p in pids) - cpu_before
    finally:
        await client.close()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(ours: Results, base: Results, options: argparse.Namespace) -> None:
    """Print the table: our figure, the baseline's, and the ratio."""
    connections, gateways = options.connections, options.gateways
    rows: list[tuple[str, float, float]] = []
    for name, values_ours, values_base in (
        ("send→ack", ours.ack_ms, base.ack_ms),
        ("send→delivered to all", ours.delivered_ms, base.delivered_ms),
    ):
        for q in (50, 95, 99):
            rows.append((f"{name} p{q} (ms)", pct(values_ours, q), pct(values_base, q)))
    rows.append(("deliveries/s", ours.deliveries / ours.seconds, base.deliveries / base.seconds))
    print(
        f"\nchat_latency: {connections} connections, {gateways} gateway process(es), groups of {options.group_size}, "
        f"{options.rate:g} messages/s for {options.duration:g} s"
    )
    print(f"{'metric':32} {'tribe':>12} {'baseline':>12} {'ratio':>8}")
    for name, a, b in rows:
        ratio = a / b if b else float("nan")
        print(f"{name:32} {a:12.2f} {b:12.2f} {ratio:8.2f}")
    for name, a_int, b_int in (
        ("sent", ours.sent, base.sent),
        ("acked", ours.acked, base.acked),
        ("errors", ours.errors, base.errors),
        ("lost deliveries", ours.lost, base.lost),
        ("duplicate deliveries", ours.duplicates, base.duplicates),
    ):
        print(f"{name:32} {a_int:12d} {b_int:12d}")
    a_rss = ours.rss_per_connection_kib or 0.0
    b_rss = base.rss_per_connection_kib or 0.0
    rss_ratio = a_rss / b_rss if b_rss else float("nan")
    print(f"{'RSS per idle connection (KiB)':32} {a_rss:12.1f} {b_rss:12.1f} {rss_ratio:8.2f}")
    a_cpu = ours.cpu_ms_per_message or 0.0
    b_cpu = base.cpu_ms_per_message or 0.0
    cpu_ratio = a_cpu / b_cpu if b_cpu else float("nan")
    print(f"{'server CPU per message (ms)':32} {a_cpu:12.2f} {b_cpu:12.2f} {cpu_ratio:8.2f}")
    if ours.fan_deliveries:
        per_gateway = ours.fan_deliveries / max(ours.fan_seconds, 1e-9) / gateways
        per_cpu = ours.fan_deliveries / max(ours.fan_cpu_seconds, 1e-9)
        print(
            f"\nfan-out phase: {options.fanout_events} events straight to NATS, {ours.fan_deliveries} socket deliveries"
        )
        print(f"{'deliveries/s per gateway (wall)':32} {per_gateway:12.0f}")
        print(f"{'deliveries per gateway CPU-second':32} {per_cpu:12.0f}")
    print(f"(load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


async def main_async(options: argparse.Namespace) -> None:
    """Run the Tribe measurement, then the baseline, and print both."""
    from shared.config import load_settings
    from shared.db.migrate import upgrade
    from shared.dev.stack import EmbeddedStack

    work = Path(tempfile.mkdtemp(prefix="tribe-chat-bench-"))
    stack = EmbeddedStack(work / "engines", external={k: v for k, v in os.environ.items() if k.startswith("TRIBE_")})
    children: list[subprocess.Popen[bytes]] = []
    try:
        env = await asyncio.to_thread(stack.start)
        env.update(
            {
                "TRIBE_JWT_SECRET": os.environ.get("TRIBE_JWT_SECRET", JWT_SECRET),
                "TRIBE_LOG_LEVEL": "WARNING",
                "TRIBE_CHAT_MESSAGE_RATE_LIMIT": "1000000",
            }
        )
        await asyncio.to_thread(upgrade, env["TRIBE_DATABASE_URL"])
        settings = load_settings(env)
        rows = await create_population(env["TRIBE_DATABASE_URL"], settings, options.connections, options.group_size)
        urls = []
        for n in range(options.gateways):
            port = free_port()
            process = start(["-m", "realtime", "--port", str(port)], env, work / f"gateway-{n}.log")
            children.append(process)
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/health", process)
            urls.append(f"ws://127.0.0.1:{port}/v1/ws")
        population = [
            (chat, msgspec.json.encode({"type": "connection.init", "token": token, "client": "bench"}))
            for _, token, chat in rows
        ]
        ours = await measure(
            "tribe",
            urls,
            population,
            [p.pid for p in children],
            options.rate,
            options.duration,
            (env["TRIBE_NATS_URL"], options.fanout_events) if options.fanout_events else None,
        )

        port = free_port()
        baseline = start([SCRIPT, "--serve-baseline", str(port)], {}, work / "baseline.log")
        children.append(baseline)
        await asyncio.sleep(0.5)
        for _ in range(100):
            try:
                async with connect(f"ws://127.0.0.1:{port}", open_timeout=1) as probe:
                    await probe.send('{"chats": []}')
                    await probe.recv()
                break
            except OSError:
                await asyncio.sleep(0.1)
        base_population = [
            (chat, msgspec.json.encode({"type": "connection.init", "chats": [chat]})) for _, _, chat in rows
        ]
        base = await measure(
            "baseline", [f"ws://127.0.0.1:{port}"], base_population, [baseline.pid], options.rate, options.duration
        )
        report(ours, base, options)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        await asyncio.to_thread(stack.stop)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=1000, help="WebSocket clients (default 1000)")
    parser.add_argument("--group-size", type=int, default=10, help="members per group chat (default 10)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second in total (default 100)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending (default 15)")
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes to start (default 1)")
    parser.add_argument(
        "--fanout-events",
        type=int,
        default=5000,
        help="events published straight to NATS to time the gateways' fan-out (default 5000; 0 skips)",
    )
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    """Entry point."""
    options = parse_args()
    if options.serve_baseline:
        uvloop.run(serve_baseline(options.serve_baseline))
        return
    uvloop.run(main_async(options))


if __name__ == "__main__":
    main()
