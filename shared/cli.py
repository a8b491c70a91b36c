"""The ``tribe`` command: run the whole stack locally, or each process against external engines.

This module is the composition root: its commands import the process packages
lazily, so importing ``shared`` never pulls in litestar, websockets or arq.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.table import Table

from shared.config import Settings, SettingsError, load_settings

console = Console(stderr=True)
CHILD_STOP_SECONDS = 5.0


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise SystemExit(2) from None


@click.group()
def main() -> None:
    """Tribe: community and events backend."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="granian worker processes")
def api(host: str, port: int, workers: int) -> None:
    """Serve the REST API with granian."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    _settings_or_exit()  # fail fast, naming the bad variable, before granian forks
    Granian(
        "api.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_access=False,
    ).serve()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
def realtime(host: str, port: int) -> None:
    """Serve the WebSocket gateway."""
    from realtime.server import main as serve

    _settings_or_exit()
    serve(host=host, port=port)


@main.command()
def worker() -> None:
    """Run the arq worker (outbox relay, jobs, crons)."""
    from workers.main import main as run

    _settings_or_exit()
    run()


@main.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Apply database migrations."""
    from shared.db.migrate import upgrade

    settings = _settings_or_exit()
    upgrade(settings.database_url, revision)
    console.print(f"[green]database at {revision}[/green]")


@main.command()
def seed() -> None:
    """Load the demo community (idempotent)."""
    from shared.dev.seed import seed_demo

    asyncio.run(seed_demo(_settings_or_exit(), console))


@main.command()
@click.option("--data-dir", default=".tribe", show_default=True, type=click.Path(path_type=Path))
@click.option("--api-port", default=8000, show_default=True, type=int)
@click.option("--realtime-port", default=8001, show_default=True, type=int)
@click.option("--seed", "with_seed", is_flag=True, help="load the demo community")
def up(data_dir: Path, api_port: int, realtime_port: int, with_seed: bool) -> None:
    """Start the embedded engines, migrate, and run API, gateway and worker until Ctrl-C."""
    from shared.dev.stack import EmbeddedStack

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = EmbeddedStack(
        data_dir,
        external=os.environ,
        on_status=lambda line: console.print(f"  {line}"),
        reserved_ports=(api_port, realtime_port),
    )
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        console.print("[bold]Starting engines[/bold]")
        env = {**os.environ, **stack.start()}
        env.setdefault("TRIBE_JWT_SECRET", _persistent_secret(data_dir / "jwt_secret"))
        env.setdefault("TRIBE_PUBLIC_API_URL", f"http://127.0.0.1:{api_port}")
        env.setdefault("TRIBE_PUBLIC_APP_URL", f"http://127.0.0.1:{api_port}")
        env.setdefault("TRIBE_PUBLIC_REALTIME_URL", f"ws://127.0.0.1:{realtime_port}")
        settings = load_settings(env)
        from shared.db.migrate import upgrade

        upgrade(settings.database_url)
        console.print("  migrations applied")
        if with_seed:
            from shared.dev.seed import seed_demo

            asyncio.run(seed_demo(settings, console))
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        commands = {
            "api": ["api", "--port", str(api_port)],
            "realtime": ["realtime", "--port", str(realtime_port)],
            "worker": ["worker"],
        }
        for name, args in commands.items():
            if stop_requested:
                break
            with (logs / f"{name}.log").open("ab") as log_file:
                children[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
                    [sys.executable, "-m", "shared.cli", *args],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                )
        if not stop_requested:
            from shared.dev.stripe import register_webhook

            webhook_url = f"http://127.0.0.1:{api_port}/v1/payments/webhook"
            if register_webhook(settings.stripe_api_base, webhook_url, settings.stripe_webhook_secret):
                console.print(f"  localstripe webhooks -> {webhook_url}")
            _print_urls(settings, api_port, realtime_port, stack.mail_dir, logs)
        while not stop_requested:
            for name, child in children.items():
                if child.poll() is not None:
                    console.print(f"[red]{name} exited with code {child.returncode}; see {logs / name}.log[/red]")
                    stop_requested = True
            time.sleep(0.2)
    finally:
        console.print("[bold]Stopping[/bold]")
        _stop_children(children)
        stack.stop()
        console.print("stopped")


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child, wait together, then SIGKILL whatever is left."""
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _persistent_secret(path: Path) -> str:
    """A signing secret kept under the data directory, so tokens survive a restart."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _print_urls(settings: Settings, api_port: int, realtime_port: int, mail_dir: Path, logs: Path) -> None:
    table = Table(title="Tribe is running (Ctrl-C stops everything)")
    table.add_column("what")
    table.add_column("where")
    api_url = f"http://127.0.0.1:{api_port}"
    for name, where in (
        ("API", f"{api_url}/v1"),
        ("API docs", f"{api_url}/docs"),
        ("OpenAPI", f"{api_url}/schema/openapi.json"),
        ("Realtime gateway", f"ws://127.0.0.1:{realtime_port}/v1/ws"),
        ("PostgreSQL", settings.database_url),
        ("Redis", settings.redis_url),
        ("NATS", settings.nats_url),
        ("S3", f"{settings.s3_endpoint_url} (bucket {settings.s3_bucket})"),
        ("Stripe (localstripe)", settings.stripe_api_base),
        ("SMTP", settings.smtp_url),
        ("Mail folder", str(mail_dir)),
        ("Push", settings.push_url or "off (TRIBE_PUSH_URL unset)"),
        ("Logs", str(logs)),
    ):
        table.add_row(name, where)
    console.print(table)


if __name__ == "__main__":
    main()
