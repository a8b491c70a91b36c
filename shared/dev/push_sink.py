"""A local push sink speaking the Expo push API: every request is stored as a JSON file in ``<data_dir>/push``.

Run as a child process by the stack: ``python -m shared.dev.push_sink --port N --dir D``.
Tokens starting with ``ExponentPushToken[invalid`` get a ``DeviceNotRegistered`` ticket, as Expo
answers for an uninstalled app.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, StopPolicy, http_status, python_child_env, python_module_argv

STOP_POLICY = StopPolicy(kill_after=5.0)
SEND_PATH = "/--/api/v2/push/send"
INVALID_TOKEN_PREFIX = "ExponentPushToken[invalid"

log = logging.getLogger("tribe.push_sink")


class PushSinkEngine(Engine):
    """The push sink as an engine of the stack; requests land in ``<data_dir>/push``."""

    name: ClassVar[str] = "push"
    env_var: ClassVar[str] = "TRIBE_PUSH_URL"
    port_names: ClassVar[tuple[str, ...]] = ("push",)

    @property
    def push_dir(self) -> Path:
        """Where received requests are stored."""
        return self.ctx.data_dir / "push"

    def env(self) -> dict[str, str]:
        """The push endpoint URL."""
        return {self.env_var: f"http://{HOST}:{self.port}{SEND_PATH}"}

    def start(self) -> None:
        """Start the sink process and wait until it answers."""
        self.push_dir.mkdir(parents=True, exist_ok=True)
        argv = python_module_argv(__name__, "--port", str(self.port), "--dir", str(self.push_dir))
        process = self.spawn(argv, cwd=self.ctx.data_dir, env=python_child_env(), policy=STOP_POLICY)
        url = f"http://{HOST}:{self.port}/health"
        self.wait_ready(process, lambda: http_status(url) == 200, "answering /health")


def ticket_for(message: Any) -> dict[str, Any]:
    """Expo's ticket for one message."""
    token = message.get("to") if isinstance(message, dict) else None
    if not isinstance(token, str) or not token:
        return {"status": "error", "message": "missing to", "details": {"error": "InvalidCredentials"}}
    if token.startswith(INVALID_TOKEN_PREFIX):
        return {
            "status": "error",
            "message": f'"{token}" is not a registered push notification recipient',
            "details": {"error": "DeviceNotRegistered"},
        }
    return {"status": "ok", "id": str(uuid.uuid4())}


def write_request(directory: Path, body: Any) -> Path:
    """Store one request body; the name sorts by arrival and the file appears complete or not at all."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"
    final = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.json"
    tmp = directory / f".{final.name}.tmp"
    tmp.write_text(json.dumps(body))
    tmp.replace(final)
    return final


def make_handler(directory: Path) -> type[BaseHTTPRequestHandler]:
    """A request handler storing into ``directory``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200 if self.path == "/health" else 404, {"ok": self.path == "/health"})

        def do_POST(self) -> None:
            if self.path != SEND_PATH:
                self._answer(404, {"errors": [{"code": "NOT_FOUND", "message": "unknown path"}]})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._answer(400, {"errors": [{"code": "VALIDATION_ERROR", "message": "not JSON"}]})
                return
            messages = body if isinstance(body, list) else [body]
            write_request(directory, messages)
            self._answer(200, {"data": [ticket_for(m) for m in messages]})

        def log_message(self, format: str, *args: Any) -> None:
            log.info(format, *args)

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of the sink process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.dir))

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("push sink on %s:%d storing requests in %s (pid %d)", args.host, args.port, args.dir, os.getpid())
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
