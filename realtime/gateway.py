"""The gateway: a ``websockets`` server, its connection registry and its NATS connection."""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import msgspec
import nats
import structlog
from nats.aio.client import Client as NatsClient
from sqlalchemy.exc import SQLAlchemyError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from realtime.fanout import ChatFanout
from realtime.frames import (
    Ack,
    ClientFrame,
    ConnectionAck,
    ConnectionInit,
    DeliveryRead,
    ErrorFrame,
    FrameError,
    MessageDelete,
    MessageEdit,
    MessageNew,
    MessageSend,
    Ping,
    Pong,
    ResumeDone,
    TypingStart,
    TypingStop,
    decode_client_frame,
)
from realtime.registry import Connection, ConnectionRegistry
from shared import ids
from shared.config import normalise_origin
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat.presence import PresenceAnnouncer, PresenceChange
from shared.domain.chat.schemas import SendMessageRequest
from shared.domain.chat.services import REPLAY_BATCH, ChatService
from shared.errors import DomainError, InvalidInput, NotFound, Unauthenticated, Unavailable

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("realtime.gateway")

WS_PATH = "/v1/ws"
CHAT_WS_PREFIX = "/v1/chats/"
HEALTH_PATH = "/health"
SUBSCRIBE_FLUSH_TIMEOUT_S = 2


class Authenticator(Protocol):
    """Turns an access token into claims or raises :class:`Unauthenticated` (``AccessChecker`` is one)."""

    async def check(self, token: str) -> AccessClaims:
        """The verified claims behind ``token``."""
        ...


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """Tunables of one gateway process; the defaults are the production values."""

    init_timeout: float = 5.0
    heartbeat_interval: float = 20.0
    # Close handshakes wait at most this long, so shutdown finishes in a few seconds.
    close_timeout: float = 2.0
    # Seconds between health turning 503 and sockets closing, for load balancers to notice.
    drain_grace: float = 0.0
    # Bounds what one client can make the gateway buffer; chat frames are far smaller.
    max_message_bytes: int = 64 * 1024
    auth_timeout: float = 5.0
    nats_name: str = "tribe-realtime"
    nats_startup_attempts: int = 5
    # Frames waiting for one slow client before it is closed with 1013.
    send_queue_frames: int = 1024
    # Bytes waiting for one slow client (queued frames) before it is closed with 1013.
    send_queue_bytes: int = 4 * 1024 * 1024
    # Browser Origins allowed to open a socket (normalised); empty allows any. A request without
    # an Origin header (a native app, a server) is not a browser page and is let through.
    allowed_origins: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Route:
    """Where a socket was opened: the general stream or one chat's."""

    chat_id: uuid.UUID | None = None


class Health(msgspec.Struct, frozen=True):
    """The body of ``GET /health``."""

    status: str
    connections: int
    nats: str
    subscriptions: int


def parse_route(path: str) -> Route | None:
    """The route for a request path (query ignored), or ``None`` if no socket lives there."""
    path = urlsplit(path).path
    if path == WS_PATH:
        return Route()
    if path.startswith(CHAT_WS_PREFIX) and path.endswith("/ws"):
        chat = path[len(CHAT_WS_PREFIX) : -len("/ws")]
        try:
            return Route(chat_id=ids.decode(ids.Prefix.CHAT, chat))
        except ids.InvalidId:
            return None
    return None


class Gateway:
    """Owns the WebSocket server, the registry of open connections and the NATS connection."""

    def __init__(
        self,
        authenticator: Authenticator,
        nats_url: str,
        chat: Callable[[NatsClient], ChatService],
        options: GatewayOptions | None = None,
        announcer: Callable[[NatsClient], PresenceAnnouncer] | None = None,
    ) -> None:
        self.options = options or GatewayOptions()
        self.registry = ConnectionRegistry()
        self._authenticator = authenticator
        self._nats_url = nats_url
        self._chat_factory = chat
        self._chat: ChatService | None = None
        self._announcer_factory = announcer
        self._announcer: PresenceAnnouncer | None = None
        # Presence announcements in flight; awaited on shutdown, before NATS drains.
        self._background: set[asyncio.Task[None]] = set()
        self._fanout: ChatFanout | None = None
        self._nats: NatsClient | None = None
        self._server: Server | None = None
        self._draining = False
        # Names this process (sockets' presence members are their own ids, unique across gateways).
        self.instance_id = uuid.uuid4().hex
        self._presence_task: asyncio.Task[None] | None = None

    @property
    def nats(self) -> NatsClient:
        """The NATS connection (fan-out subscribes and publishes through it)."""
        if self._nats is None:
            raise RuntimeError("gateway not started")
        return self._nats

    @property
    def draining(self) -> bool:
        """True once shutdown began: health is 503 and no new socket is accepted."""
        return self._draining

    @property
    def heartbeat_ms(self) -> int:
        """The ping interval announced to clients in ``connection.ack``."""
        return round(self.options.heartbeat_interval * 1000)

    def bound_ports(self) -> list[int]:
        """The TCP ports the server listens on (useful when started on port 0)."""
        if self._server is None:
            return []
        return [sock.getsockname()[1] for sock in self._server.sockets]

    @property
    def chat(self) -> ChatService:
        """The chat service (the same one the REST API uses)."""
        if self._chat is None:
            raise RuntimeError("gateway not started")
        return self._chat

    @property
    def fanout(self) -> ChatFanout:
        """NATS subscriptions of this process and delivery to sockets."""
        if self._fanout is None:
            raise RuntimeError("gateway not started")
        return self._fanout

    async def start(self, host: str, port: int) -> None:
        """Connect to NATS, then listen on ``host:port``."""
        self._nats = await self._connect_nats()
        self._chat = self._chat_factory(self._nats)
        if self._announcer_factory is not None:
            self._announcer = self._announcer_factory(self._nats)
        self._fanout = ChatFanout(self._nats)
        try:
            self._server = await serve(
                self._handle,
                host,
                port,
                process_request=self._process_request,
                # Without compression an idle connection costs ~14 KiB instead of ~64 KiB.
                compression=None,
                max_size=self.options.max_message_bytes,
                ping_interval=self.options.heartbeat_interval,
                ping_timeout=self.options.heartbeat_interval,
                close_timeout=self.options.close_timeout,
            )
        except BaseException:
            await self._nats.close()
            raise
        self._presence_task = asyncio.get_running_loop().create_task(self._refresh_presence(), name="presence")
        log.info("gateway.listening", host=host, ports=self.bound_ports(), heartbeat_ms=self.heartbeat_ms)

    async def shutdown(self) -> None:
        """Turn health 503, close every socket with 1012 so clients reconnect elsewhere, drain NATS."""
        if self._draining:
            return
        self._draining = True
        log.info("gateway.draining", connections=len(self.registry))
        if self._presence_task is not None:
            self._presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence_task
        if self.options.drain_grace > 0:
            await asyncio.sleep(self.options.drain_grace)
        if self._server is not None:
            self._server.close(close_connections=True, code=CloseCode.SERVICE_RESTART, reason="service_restart")
            try:
                # Each close handshake is bounded by close_timeout; the margin covers handlers finishing.
                async with asyncio.timeout(self.options.close_timeout + self.options.auth_timeout + 1):
                    await self._server.wait_closed()
            except TimeoutError:
                stuck = list(self._server.all_connections)
                log.warning("gateway.close_timeout", aborted=len(stuck))
                for websocket in stuck:
                    websocket.transport.abort()
        if self._background:
            await asyncio.wait(list(self._background), timeout=self.options.close_timeout)
        if self._chat is not None:
            await self._chat.close()
        if self._nats is not None:
            await self._drain_nats(self._nats)
        log.info("gateway.stopped")

    # HTTP side of the port

    def _process_request(self, websocket: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            return self._health_response(websocket)
        if parse_route(path) is None:
            return _json_response(websocket, http.HTTPStatus.NOT_FOUND, b'{"code":"not_found"}')
        origin = request.headers.get("Origin")
        allowed = self.options.allowed_origins
        if allowed and origin is not None and normalise_origin(origin) not in allowed:
            log.info("connection.origin_refused", origin=origin[:200], remote=_remote(websocket))
            return _json_response(websocket, http.HTTPStatus.FORBIDDEN, b'{"code":"origin_not_allowed"}')
        if self._draining:
            return _json_response(websocket, http.HTTPStatus.SERVICE_UNAVAILABLE, b'{"code":"draining"}')
        return None

    def _health_response(self, websocket: ServerConnection) -> Response:
        status = http.HTTPStatus.SERVICE_UNAVAILABLE if self._draining else http.HTTPStatus.OK
        body = Health(
            status="draining" if self._draining else "ok",
            connections=len(self.registry),
            nats=_nats_state(self._nats),
            subscriptions=self._fanout.subscriptions if self._fanout else 0,
        )
        return _json_response(websocket, status, msgspec.json.encode(body))

    # WebSocket side

    async def _handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None  # the handler only runs after a handshake
        route = parse_route(websocket.request.path) or Route()
        started = time.monotonic()
        connection: Connection | None = None
        try:
            connection = await self._open(websocket, route)
            if connection is None:
                return
            await self._serve(connection)
        except ConnectionClosed:
            pass
        finally:
            if connection is not None:
                self.registry.discard(connection)
                await self._presence_leave(connection)
                await self.fanout.forget(connection)
                await connection.stop()
                log.info(
                    "connection.closed",
                    user_id=ids.encode(ids.Prefix.USER, connection.user_id),
                    code=websocket.close_code,
                    seconds=round(time.monotonic() - started, 3),
                )

    async def _open(self, websocket: ServerConnection, route: Route) -> Connection | None:
        """Wait for ``connection.init``, authenticate it and acknowledge; ``None`` if the socket was closed."""
        try:
            async with asyncio.timeout(self.options.init_timeout):
                message = await websocket.recv()
        except TimeoutError:
            await _reject(websocket, CloseCode.POLICY_VIOLATION, "init_timeout")
            return None
        if isinstance(message, bytes):
            await _reject(websocket, CloseCode.POLICY_VIOLATION, "bad_init_frame")
            return None
        try:
            frame = decode_client_frame(message)
        except FrameError:
            await _reject(websocket, CloseCode.POLICY_VIOLATION, "bad_init_frame")
            return None
        if not isinstance(frame, ConnectionInit):
            await _reject(websocket, CloseCode.POLICY_VIOLATION, "init_required")
            return None
        try:
            claims = await self._authenticate(frame.token)
        except Unauthenticated as exc:
            await _reject(websocket, CloseCode.POLICY_VIOLATION, exc.code)
            return None
        except Unavailable:
            await _reject(websocket, CloseCode.TRY_AGAIN_LATER, "unavailable")
            return None
        if self._draining:
            await _reject(websocket, CloseCode.SERVICE_RESTART, "service_restart")
            return None
        try:
            chat_ids = await self._chats_of(claims.user_id, route)
        except NotFound:
            await _reject(websocket, CloseCode.POLICY_VIOLATION, "chat_not_found")
            return None
        except Exception as exc:
            log.warning("connection.chats_unavailable", error=type(exc).__name__)
            await _reject(websocket, CloseCode.TRY_AGAIN_LATER, "unavailable")
            return None
        connection = Connection(
            websocket=websocket,
            user_id=claims.user_id,
            session_id=claims.session_id,
            client=frame.client,
            chat_id=route.chat_id,
            roles=claims.roles,
            queue_frames=self.options.send_queue_frames,
            queue_bytes=self.options.send_queue_bytes,
        )
        connection.start()
        self.registry.add(connection)
        await self._presence_arrive(connection)
        try:
            await self._attach(connection, chat_ids, frame.resume)
        except BaseException:
            self.registry.discard(connection)
            await self._presence_leave(connection)
            await self.fanout.forget(connection)
            await connection.stop()
            raise
        return connection

    async def _attach(self, connection: Connection, chat_ids: list[uuid.UUID], resume: dict[str, int] | None) -> None:
        """Subscribe to the user's chats, acknowledge, and replay what a resuming client missed."""
        # Live frames are held from before the subscriptions exist until the ack (and a resume's replay)
        # is out: nothing committed in between is missed, nothing replayed is sent twice, the ack comes first.
        connection.held = []
        await self.fanout.watch_user(connection)
        for chat_id in chat_ids:
            await self.fanout.join_chat(connection, chat_id)
        # Once NATS answers a ping it has our subscriptions, so whatever is sent after the client sees the
        # ack reaches it. While NATS is away the client still gets on; the subscriptions follow on reconnect.
        try:
            await self.nats.flush(timeout=SUBSCRIBE_FLUSH_TIMEOUT_S)
        except Exception as exc:
            log.warning("connection.subscribe_unconfirmed", error=type(exc).__name__)
        await connection.send(
            ConnectionAck(
                user_id=ids.encode(ids.Prefix.USER, connection.user_id),
                session_id=ids.encode(ids.Prefix.SESSION, connection.session_id),
                heartbeat_ms=self.heartbeat_ms,
            )
        )
        log.info(
            "connection.open",
            user_id=ids.encode(ids.Prefix.USER, connection.user_id),
            session_id=ids.encode(ids.Prefix.SESSION, connection.session_id),
            client=connection.client,
            chat_id=ids.encode(ids.Prefix.CHAT, connection.chat_id) if connection.chat_id else None,
            chats=len(chat_ids),
            remote=_remote(connection.websocket),
        )
        if resume:
            await self._replay(connection, resume)
        else:
            connection.release({})

    async def _chats_of(self, user_id: uuid.UUID, route: Route) -> list[uuid.UUID]:
        """The chats a new socket follows: the one in its path (if a member), else all of the user's."""
        if route.chat_id is not None:
            await self.chat.require_member(user_id, route.chat_id)
            return [route.chat_id]
        return await self.chat.chat_ids_of(user_id)

    async def _replay(self, connection: Connection, resume: dict[str, int]) -> None:
        """Send every message after each given seq, oldest first, then release the held live frames."""
        replayed_up_to: dict[uuid.UUID, int] = {}
        count = 0
        for public_id, last_seq in resume.items():
            try:
                chat_id = ids.decode(ids.Prefix.CHAT, public_id)
            except ids.InvalidId:
                chat_id = None
            if chat_id is None or chat_id not in connection.chats:
                await connection.send(ErrorFrame(code="chat_not_found", message="no such chat", ref=public_id))
                continue
            after = last_seq
            while True:
                try:
                    batch = await self.chat.messages_after(connection.user_id, chat_id, after)
                except DomainError as exc:
                    await connection.send(ErrorFrame(code=exc.code, message=exc.detail, ref=public_id))
                    break
                for message in batch:
                    await connection.send(MessageNew(chat_id=message.chat_id, seq=message.seq, message=message))
                count += len(batch)
                if batch:
                    after = batch[-1].seq
                if len(batch) < REPLAY_BATCH:
                    break
            replayed_up_to[chat_id] = after
        await connection.send(ResumeDone(replayed=count))
        connection.release(replayed_up_to)

    async def _authenticate(self, token: str) -> AccessClaims:
        """The claims behind ``token``; database trouble becomes :class:`Unavailable`."""
        try:
            async with asyncio.timeout(self.options.auth_timeout):
                return await self._authenticator.check(token)
        except DomainError:
            raise
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("connection.auth_unavailable", error=type(exc).__name__)
            raise Unavailable("cannot verify the session now") from exc

    async def _serve(self, connection: Connection) -> None:
        """Answer frames, one at a time and in order, until the client goes away."""
        async for message in connection.websocket:
            if isinstance(message, bytes):
                await connection.send(ErrorFrame(code="bad_frame", message="frames are JSON text messages"))
                continue
            try:
                frame = decode_client_frame(message)
            except FrameError as exc:
                await connection.send(ErrorFrame(code="bad_frame", message=str(exc)))
                continue
            try:
                await self._dispatch(connection, frame)
            except DomainError as exc:
                await connection.send(ErrorFrame(code=exc.code, message=_describe(exc), ref=_ref(frame)))
            except Exception as exc:
                # Database or Redis trouble: this frame failed, the socket and later frames go on.
                log.warning("frame.failed", frame=type(frame).__name__, error=type(exc).__name__, detail=str(exc))
                await connection.send(ErrorFrame(code="unavailable", message="try again shortly", ref=_ref(frame)))

    async def _dispatch(self, connection: Connection, frame: ClientFrame) -> None:
        user = connection.user_id
        match frame:
            case Ping():
                await connection.send(Pong())
            case ConnectionInit():
                await connection.send(ErrorFrame(code="bad_frame", message="connection already initialised"))
            case MessageSend():
                request = SendMessageRequest(
                    client_message_id=frame.client_message_id,
                    content=frame.content,
                    reply_to=frame.reply_to,
                    mentions=frame.mentions,
                )
                sent = await self.chat.send_message(user, self._chat_id(connection, frame.chat_id), request)
                accepted = sent.accepted
                await connection.send(
                    Ack(
                        ack_token=accepted.ack_token,
                        message_id=accepted.message_id,
                        client_message_id=accepted.client_message_id,
                        chat_id=accepted.chat_id,
                        seq=accepted.seq,
                    )
                )
            case MessageEdit():
                await self.chat.edit_message(
                    user,
                    self._chat_id(connection, frame.chat_id),
                    _path_id(ids.Prefix.MESSAGE, frame.message_id),
                    frame.content,
                )
            case MessageDelete():
                await self.chat.delete_message(
                    user, self._chat_id(connection, frame.chat_id), _path_id(ids.Prefix.MESSAGE, frame.message_id)
                )
            case TypingStart() | TypingStop():
                await self.chat.set_typing(
                    user, self._chat_id(connection, frame.chat_id), isinstance(frame, TypingStart)
                )
            case DeliveryRead():
                await self.chat.mark_read(user, self._chat_id(connection, frame.chat_id), frame.message_id)

    def _chat_id(self, connection: Connection, public_id: str) -> uuid.UUID:
        """The chat a frame names; a socket opened on one chat may only act on that chat."""
        chat_id = _path_id(ids.Prefix.CHAT, public_id)
        if connection.chat_id is not None and chat_id != connection.chat_id:
            raise NotFound("this socket belongs to another chat", code="chat_not_found")
        return chat_id

    # Presence

    @property
    def presence_ttl_s(self) -> float:
        """How long a presence mark lives without a refresh: two heartbeats."""
        return 2 * self.options.heartbeat_interval

    async def _presence_arrive(self, connection: Connection) -> None:
        # Presence only steers presence frames and offline notifications: a Redis hiccup must not
        # cost the socket.
        try:
            change = await self.chat.presence.socket_opened(
                connection.presence_member, connection.user_id, self.presence_ttl_s
            )
        except Exception as exc:
            log.warning("presence.write_failed", error=type(exc).__name__, detail=str(exc))
            return
        if change is not None:
            self._announce(change)

    async def _presence_leave(self, connection: Connection) -> None:
        try:
            change = await self.chat.presence.socket_closed(
                connection.presence_member, connection.user_id, self.presence_ttl_s
            )
        except Exception as exc:
            log.warning("presence.write_failed", error=type(exc).__name__, detail=str(exc))
            return
        if change is not None:
            self._announce(change)

    def _announce(self, change: PresenceChange) -> None:
        """Tell friends and chat peers in the background; the stamp orders it, not the send time."""
        if self._announcer is None:
            return
        task = asyncio.get_running_loop().create_task(self._announce_now(self._announcer, change))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _announce_now(self, announcer: PresenceAnnouncer, change: PresenceChange) -> None:
        try:
            await announcer.announce(change)
        except Exception as exc:
            log.warning("presence.announce_failed", error=type(exc).__name__, detail=str(exc))

    async def _refresh_presence(self) -> None:
        """Renew the presence of every open socket once per heartbeat interval."""
        while True:
            await asyncio.sleep(self.options.heartbeat_interval)
            sockets = [(c.user_id, c.presence_member) for c in self.registry]
            if not sockets:
                continue
            try:
                await self.chat.presence.refresh_sockets(sockets, self.presence_ttl_s)
            except Exception as exc:
                log.warning("presence.write_failed", error=type(exc).__name__, detail=str(exc))

    # NATS

    async def _connect_nats(self) -> NatsClient:
        async def on_error(exc: Exception) -> None:
            log.warning("nats.error", error=type(exc).__name__, detail=str(exc))

        async def on_disconnected() -> None:
            # Draining disconnects on purpose; only an unexpected loss is worth a warning.
            if not self._draining:
                log.warning("nats.disconnected")

        async def on_reconnected() -> None:
            log.info("nats.reconnected")

        client = await nats.connect(
            self._nats_url,
            name=self.options.nats_name,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            connect_timeout=2,
            # Bounded at start-up, so an unreachable NATS fails the process instead of hanging it.
            max_reconnect_attempts=self.options.nats_startup_attempts,
            reconnect_time_wait=1,
            drain_timeout=5,
        )
        # Once up, keep trying for ever: a NATS blip must not take the sockets down with it.
        client.options["max_reconnect_attempts"] = -1
        url = client.connected_url
        log.info("nats.connected", server=_redact(url.netloc) if url else None)
        return client

    async def _drain_nats(self, client: NatsClient) -> None:
        if client.is_closed:
            return
        try:
            await client.drain()
        except Exception as exc:
            # A drain can fail while reconnecting; closing still releases the socket.
            log.warning("nats.drain_failed", error=type(exc).__name__)
            await client.close()


def _path_id(prefix: ids.Prefix, value: str) -> uuid.UUID:
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise NotFound(
            f"no such {prefix.value}", code="chat_not_found" if prefix is ids.Prefix.CHAT else "not_found"
        ) from None


def _ref(frame: ClientFrame) -> str | None:
    """What an error frame refers to: a send's client id, else the message or chat the frame named."""
    match frame:
        case MessageSend():
            return frame.client_message_id
        case MessageEdit() | MessageDelete() | DeliveryRead():
            return frame.message_id
        case TypingStart() | TypingStop():
            return frame.chat_id
    return None


def _describe(exc: DomainError) -> str:
    if isinstance(exc, InvalidInput) and exc.errors:
        return "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    return exc.detail


async def _reject(websocket: ServerConnection, code: CloseCode, reason: str) -> None:
    """Close a socket that never got acknowledged; ``reason`` is a machine code clients can act on."""
    log.info("connection.rejected", code=int(code), reason=reason, remote=_remote(websocket))
    await websocket.close(code, reason)


def _json_response(websocket: ServerConnection, status: http.HTTPStatus, body: bytes) -> Response:
    response = websocket.respond(status, body.decode())
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


def _nats_state(client: NatsClient | None) -> str:
    if client is None:
        return "disconnected"
    if client.is_connected:
        return "connected"
    if client.is_reconnecting:
        return "reconnecting"
    return "closed" if client.is_closed else "disconnected"


def _remote(websocket: ServerConnection) -> str | None:
    address = websocket.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return None


def _redact(netloc: str) -> str:
    """``host:port`` without any ``user:password@`` part."""
    return netloc.rpartition("@")[2]
