"""A local SMTP sink (aiosmtpd) that stores every received mail as a ``.eml`` file in ``<data_dir>/mail``.

Run as a child process by the stack: ``python -m shared.dev.smtp_sink --port N --dir D``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, StopPolicy, python_child_env, python_module_argv, tcp_exchange

STOP_POLICY = StopPolicy(kill_after=5.0)

log = logging.getLogger("tribe.smtp_sink")


class SmtpSinkEngine(Engine):
    """The SMTP sink as an engine of the stack; mail lands in ``<data_dir>/mail``."""

    name: ClassVar[str] = "smtp"
    env_var: ClassVar[str] = "TRIBE_SMTP_URL"
    port_names: ClassVar[tuple[str, ...]] = ("smtp",)

    @property
    def mail_dir(self) -> Path:
        """Where received mails are stored."""
        return self.ctx.data_dir / "mail"

    def env(self) -> dict[str, str]:
        """The SMTP URL."""
        return {self.env_var: f"smtp://{HOST}:{self.port}"}

    def start(self) -> None:
        """Start the sink process and wait for its greeting."""
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        argv = python_module_argv(__name__, "--port", str(self.port), "--dir", str(self.mail_dir))
        process = self.spawn(argv, cwd=self.ctx.data_dir, env=python_child_env(), policy=STOP_POLICY)
        self.wait_ready(process, lambda: tcp_exchange(self.port, None, b"220"), "greeting")


def write_eml(directory: Path, mail_from: str | None, rcpt_tos: Sequence[str], content: bytes) -> Path:
    """Store one message; the name sorts by arrival and the file appears complete or not at all."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"
    final = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    # The envelope can differ from the headers (Bcc, bounces); tests assert on it, so keep it.
    envelope = f"X-Envelope-From: <{mail_from or ''}>\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n".encode()
    tmp = directory / f".{final.name}.tmp"
    with tmp.open("wb") as f:
        f.write(envelope + content)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(final)
    return final


class EmlHandler:
    """aiosmtpd handler: every accepted DATA becomes a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Store the message and accept it."""
        content: bytes = envelope.original_content or b""
        path = write_eml(self.directory, envelope.mail_from, list(envelope.rcpt_tos), content)
        log.info("stored mail from %s to %s as %s", envelope.mail_from, envelope.rcpt_tos, path.name)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve SMTP on ``host:port`` until SIGTERM or SIGINT."""
    from aiosmtpd.smtp import SMTP, AuthResult

    handler = EmlHandler(directory)
    loop = asyncio.get_running_loop()

    def accept_any_login(*_: Any) -> AuthResult:
        # A sink: clients configured with credentials must not fail here, whatever they send.
        return AuthResult(success=True)

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="tribe-smtp-sink",
            enable_SMTPUTF8=True,
            authenticator=accept_any_login,
            auth_require_tls=False,
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("SMTP sink listening on %s:%d, storing mail in %s", host, port, directory)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of the sink process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, args.dir))


if __name__ == "__main__":
    main()
