"""Locust scenarios against a running stack (``uv run tribe up --seed``): a REST user and a WebSocket chat user.

Run headless (the API rate-limits sign-ups and logins per address, so raise that limit for the
stack under test)::

    TRIBE_AUTH_RATE_LIMIT_PER_MINUTE=100000 uv run tribe up --seed --data-dir /tmp/tribe-load
    uv run locust -f loadtests/locustfile.py --headless -u 16 -r 8 -t 30s \\
        --host http://127.0.0.1:8000 --ws-url ws://127.0.0.1:8001/v1/ws --only-summary

``RestUser`` takes an account of a small pool (signed up and logged in once per run), then lists
events, reads the home feed, RSVPs to events (going, then not going) and posts chat messages over
REST. ``ChatUser`` takes an account, opens a group chat with two peer accounts, connects to the
gateway (``connection.init``), sends ``message.send`` frames and reports each send→ack time as a
``WS message.send→ack`` request. Events to RSVP to are made once per run by the seeded organizer;
without ``--seed`` the RSVP task simply finds none.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from locust import HttpUser, User, between, constant_pacing, events, task
from locust.env import Environment
from websockets.sync.client import ClientConnection, connect

PASSWORD = "locust-password-0123456789"
ORGANIZER_EMAIL = "alex@demo.tribe.dev"
ORGANIZER_PASSWORD = "tribe-demo-password"
EVENTS_TO_CREATE = 5
# Simulated users share this many accounts: signing up or logging in is an argon2id hash (tens of
# milliseconds of CPU on purpose), which would otherwise dominate the run.
ACCOUNTS = 4
_counter = itertools.count()
# Filled by on_test_start: published event ids to RSVP to, two peers every chat includes, and the
# pool of (user id, access token) the simulated users take turns on.
_shared: dict[str, list[Any]] = {"events": [], "peers": [], "accounts": []}
_shared_lock = threading.Lock()


def _add_arguments(parser: Any) -> None:
    parser.add_argument("--ws-url", default="ws://127.0.0.1:8001/v1/ws", help="the gateway's /v1/ws URL")


def _sign_up(base: str, email: str) -> tuple[str, str]:
    """Register ``email`` unless it exists (409), then log in; its (user id, access token)."""
    body = {"email": email, "password": PASSWORD, "display_name": "Load Tester"}
    response = requests.post(f"{base}/v1/users", json=body, timeout=60)
    if response.status_code != 409:
        response.raise_for_status()
    return _log_in(base, email, PASSWORD)


def _account() -> tuple[str, str]:
    """The next account of the pool, round robin (waiting while test_start still makes the pool)."""
    while not _shared["accounts"]:
        time.sleep(0.1)  # cooperative: locust monkey-patches time
    accounts: list[tuple[str, str]] = _shared["accounts"]
    return accounts[next(_counter) % len(accounts)]


def _log_in(base: str, email: str, password: str) -> tuple[str, str]:
    response = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=60)
    response.raise_for_status()
    pair = response.json()
    return pair["user_id"], pair["access_token"]


def _on_test_start(environment: Environment, **_: Any) -> None:
    """Two peer accounts for the chats, and a few published events from the seeded organizer."""
    base = environment.host or "http://127.0.0.1:8000"
    # Fixed addresses: a second run reuses the accounts instead of hashing new passwords.
    # Threads are greenlets under locust's monkey-patching: the hashes overlap with network waits.
    with ThreadPoolExecutor(ACCOUNTS) as pool:
        accounts = list(pool.map(lambda i: _sign_up(base, f"locust-{i}@example.com"), range(ACCOUNTS + 2)))
    peers = [user_id for user_id, _ in accounts[ACCOUNTS:]]
    made: list[str] = []
    token: str | None = None
    # Not seeded: no organizer, so no events to RSVP to.
    with contextlib.suppress(requests.HTTPError):
        token = _log_in(base, ORGANIZER_EMAIL, ORGANIZER_PASSWORD)[1]
    if token is not None:
        headers = {"Authorization": f"Bearer {token}"}
        start = datetime.now(UTC) + timedelta(days=7)
        for i in range(EVENTS_TO_CREATE):
            event: dict[str, Any] = {
                "title": f"Load test meetup {i}",
                "start_time": (start + timedelta(hours=i)).isoformat(),
                "end_time": (start + timedelta(hours=i + 2)).isoformat(),
                "location": {"name": "Zilker Park", "latitude": 30.2669, "longitude": -97.7729, "city": "Austin"},
                "capacity": 100000,
            }
            created = requests.post(f"{base}/v1/events", json=event, headers=headers, timeout=30)
            created.raise_for_status()
            event_id = created.json()["id"]
            requests.post(f"{base}/v1/events/{event_id}/publish", headers=headers, timeout=30).raise_for_status()
            made.append(event_id)
    with _shared_lock:
        _shared["peers"] = peers
        _shared["events"] = made
        _shared["accounts"] = accounts[:ACCOUNTS]


class RestUser(HttpUser):
    """Browses events and the feed, RSVPs and chats over REST."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        """Take an account of the pool."""
        self.user_id, token = _account()
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.going: set[str] = set()
        self.chat_id: str | None = None

    @task(4)
    def list_events(self) -> None:
        """The first page of upcoming events."""
        self.client.get("/v1/events?limit=20", name="/v1/events")

    @task(4)
    def read_feed(self) -> None:
        """The home feed's first page."""
        self.client.get("/v1/feed?limit=20", name="/v1/feed")

    @task(2)
    def rsvp(self) -> None:
        """Going to an event, or no longer going."""
        if not _shared["events"]:
            return
        event_id = random.choice(_shared["events"])
        status = "not_going" if event_id in self.going else "going"
        response = self.client.post(f"/v1/events/{event_id}/rsvp", json={"status": status}, name="/v1/events/[id]/rsvp")
        if response.ok:
            (self.going.discard if status == "not_going" else self.going.add)(event_id)

    @task(1)
    def send_chat_message(self) -> None:
        """A message over REST into the user's own group chat."""
        if self.chat_id is None:
            if len(_shared["peers"]) < 2:
                return
            body = {"type": "group", "title": "rest load", "participant_ids": _shared["peers"]}
            response = self.client.post("/v1/chats", json=body, name="/v1/chats")
            if not response.ok:
                return
            self.chat_id = response.json()["id"]
        message = {"client_message_id": uuid.uuid4().hex, "content": {"type": "text", "text": "hello over REST"}}
        self.client.post(f"/v1/chats/{self.chat_id}/messages", json=message, name="/v1/chats/[id]/messages")


class ChatUser(User):
    """One WebSocket on the gateway; each task sends a message and times it until its ack."""

    weight = 1
    # Two simulated users per account: one message per account per second, under the chat rate limit.
    wait_time = constant_pacing(2)

    def on_start(self) -> None:
        """Take an account, open a group chat with the peers, connect and initialise the socket."""
        self.ws: ClientConnection | None = None
        self._sockets = contextlib.ExitStack()
        base = self.host or "http://127.0.0.1:8000"
        self.user_id, self.token = _account()
        body = {"type": "group", "title": "ws load", "participant_ids": _shared["peers"]}
        created = requests.post(
            f"{base}/v1/chats", json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        created.raise_for_status()
        self.chat_id: str = created.json()["id"]
        self._connect()

    def on_stop(self) -> None:
        """Close the socket."""
        self._sockets.close()

    def _connect(self) -> None:
        began = time.perf_counter()
        try:
            self.ws = self._sockets.enter_context(
                connect(self.environment.parsed_options.ws_url, open_timeout=10, compression=None)
            )
            self.ws.send(json.dumps({"type": "connection.init", "token": self.token, "client": "locust"}))
            ack = self._until(lambda f: f["type"] == "connection.ack", within=10)
            self._fire("connection.init", began, len(json.dumps(ack)))
        except Exception as exc:
            self._fire("connection.init", began, 0, exc)
            self.ws = None

    def _until(self, match: Any, within: float) -> dict[str, Any]:
        """Read frames until one satisfies ``match``; others (presence, typing ...) are skipped."""
        assert self.ws is not None
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching frame in time")
            frame: dict[str, Any] = json.loads(self.ws.recv(timeout=remaining))
            if frame["type"] == "error":
                raise RuntimeError(f"error frame: {frame.get('code')}")
            if match(frame):
                return frame

    def _fire(self, name: str, began: float, length: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - began) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    @task
    def send_message(self) -> None:
        """``message.send`` → ``ack`` for the same client id."""
        if self.ws is None:
            self._connect()
            return
        client_message_id = uuid.uuid4().hex
        frame = {
            "type": "message.send",
            "chat_id": self.chat_id,
            "client_message_id": client_message_id,
            "content": {"type": "text", "text": "hello over the socket"},
        }
        began = time.perf_counter()
        try:
            self.ws.send(json.dumps(frame))
            ack = self._until(
                lambda f: f["type"] == "ack" and f.get("client_message_id") == client_message_id, within=10
            )
            self._fire("message.send→ack", began, len(json.dumps(ack)))
        except Exception as exc:
            self._fire("message.send→ack", began, 0, exc)
            # Reconnect on the next turn; closing the stack closes this socket.
            self._sockets.close()
            self.ws = None


events.init_command_line_parser.add_listener(_add_arguments)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_on_test_start)  # type: ignore[no-untyped-call]
