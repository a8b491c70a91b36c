"""``python -m realtime``: run the gateway."""

from __future__ import annotations

import argparse

from realtime.server import main


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m realtime", description="Run the Tribe realtime gateway.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port for WebSockets and /health (default: 8001)")
    parser.add_argument(
        "--init-timeout", type=float, default=5.0, help="seconds a client has to send connection.init (default: 5)"
    )
    parser.add_argument("--heartbeat", type=float, default=20.0, help="seconds between keepalive pings (default: 20)")
    parser.add_argument(
        "--drain-grace",
        type=float,
        default=0.0,
        help="seconds /health reports 503 before sockets close on shutdown (default: 0)",
    )
    parser.add_argument(
        "--send-queue-frames",
        type=int,
        default=1024,
        help="frames queued for a slow client before it is closed with 1013 (default: 1024)",
    )
    parser.add_argument(
        "--send-queue-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="bytes queued for a slow client before it is closed with 1013 (default: 4 MiB)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args()
    main(
        args.host,
        args.port,
        init_timeout=args.init_timeout,
        heartbeat_interval=args.heartbeat,
        drain_grace=args.drain_grace,
        send_queue_frames=args.send_queue_frames,
        send_queue_bytes=args.send_queue_bytes,
    )
