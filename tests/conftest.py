"""Session-wide real engines and a real API process; nothing here is mocked.

Set ``TRIBE_TEST_<NAME>`` (e.g. ``TRIBE_TEST_DATABASE_URL``) to use a running engine
instead of starting the embedded one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.config import known_variables, load_settings
from shared.db.migrate import upgrade
from shared.dev.stack import EmbeddedStack
from shared.dev.stripe import register_webhook
from tests.support import client_address, free_port, start_process, stop_process, wait_http

TEST_PREFIX = "TRIBE_TEST_"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
RATE_LIMIT_PER_MINUTE = 40


def _external_engines() -> dict[str, str]:
    """``TRIBE_TEST_X`` variables renamed to the ``TRIBE_X`` settings they stand for."""
    known = known_variables()
    out = {}
    for key, value in os.environ.items():
        if key.startswith(TEST_PREFIX):
            name = "TRIBE_" + key[len(TEST_PREFIX) :]
            if name in known:
                out[name] = value
    return out


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's engines keep their data and logs."""
    return tmp_path_factory.mktemp("tribe")


@pytest.fixture(scope="session")
def engine_stack(data_dir: Path) -> Iterator[tuple[EmbeddedStack, dict[str, str]]]:
    """The engines, started once per session, with the schema migrated."""
    stack = EmbeddedStack(data_dir / "engines", external=_external_engines())
    try:
        env = stack.start()
        env.update(
            {
                "TRIBE_JWT_SECRET": JWT_SECRET,
                "TRIBE_AUTH_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
                "TRIBE_LOG_LEVEL": "INFO",
                "TRIBE_ENV": "test",
            }
        )
        upgrade(env["TRIBE_DATABASE_URL"])
        yield stack, env
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def engine_env(engine_stack: tuple[EmbeddedStack, dict[str, str]]) -> dict[str, str]:
    """Every ``TRIBE_*`` variable the processes need, pointing at the session's engines."""
    return dict(engine_stack[1])


@pytest.fixture(scope="session")
def mail_dir(engine_stack: tuple[EmbeddedStack, dict[str, str]]) -> Path:
    """Where the SMTP sink writes each received mail as a ``.eml`` file."""
    return engine_stack[0].mail_dir


@pytest.fixture(scope="session")
def api_url(engine_env: dict[str, str], data_dir: Path) -> Iterator[str]:
    """A real API process (granian) on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**engine_env, "TRIBE_PUBLIC_API_URL": url, "TRIBE_PUBLIC_APP_URL": url}
    log = data_dir / "logs" / "api.log"
    process = start_process(["shared.cli", "api", "--port", str(port)], env, log)
    try:
        wait_http(f"{url}/health/ready", timeout=60, process=process, log=log)
        register_webhook(
            engine_env["TRIBE_STRIPE_API_BASE"],
            f"{url}/v1/payments/webhook",
            load_settings(env).stripe_webhook_secret,
        )
        yield url
    finally:
        stop_process(process)


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client from its own loopback address (its own rate-limit buckets)."""
    transport = httpx.AsyncHTTPTransport(local_address=client_address())
    async with httpx.AsyncClient(base_url=api_url, transport=transport, timeout=30) as http:
        yield http
