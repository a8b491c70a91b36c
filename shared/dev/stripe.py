"""A fake Stripe API (``localstripe``) on 127.0.0.1, its state kept in ``<data_dir>/stripe``.

The engine runs ``python -m shared.dev.stripe --port N --store FILE`` rather than the ``localstripe``
command because that one listens on every interface (``::``) and keeps its state in the shared
``/tmp/localstripe.pickle``, so two stacks on one machine would read each other's customers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, StopPolicy, http_status, python_child_env, python_module_argv

STOP_POLICY = StopPolicy(kill_after=5.0)
# localstripe accepts any key shaped like a secret key; this is the settings default.
PROBE_KEY = "sk_test_tribe"

log = logging.getLogger("tribe.localstripe")


class LocalStripeEngine(Engine):
    """localstripe as an engine of the stack."""

    name: ClassVar[str] = "stripe"
    env_var: ClassVar[str] = "TRIBE_STRIPE_API_BASE"
    port_names: ClassVar[tuple[str, ...]] = ("stripe",)

    def env(self) -> dict[str, str]:
        """The API base URL (the Stripe SDK appends /v1/...)."""
        return {self.env_var: f"http://{HOST}:{self.port}"}

    def start(self) -> None:
        """Start localstripe and wait until it answers an authenticated list call."""
        data = self.data_path()
        data.mkdir(parents=True, exist_ok=True)
        argv = python_module_argv(__name__, "--port", str(self.port), "--store", str(data / "store.pickle"))
        process = self.spawn(argv, cwd=data, env=python_child_env(), policy=STOP_POLICY)
        url = f"http://{HOST}:{self.port}/v1/customers?limit=1"
        headers = {"Authorization": f"Bearer {PROBE_KEY}"}
        self.wait_ready(process, lambda: http_status(url, headers=headers) == 200, "answering /v1/customers")


def _use_store_file(path: Path) -> None:
    """Point localstripe's pickle store at ``path``, written atomically."""
    from localstripe import resources

    loading = False

    def load(self: Any) -> None:
        nonlocal loading
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        # Unpickling a dict subclass calls __setitem__ per key, which would dump the store each time.
        loading = True
        try:
            old = pickle.loads(data)  # noqa: S301 - our own file in our own data directory
        except Exception:  # a torn or incompatible file must not keep the engine down
            aside = path.with_suffix(".corrupt")
            path.replace(aside)
            log.warning("unreadable store moved to %s; starting empty", aside)
            return
        finally:
            loading = False
        self.clear()
        self.update(old)

    def dump(self: Any) -> None:
        if loading:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point of the localstripe process."""
    parser = argparse.ArgumentParser(description="localstripe on one address, with its state in one file")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    _use_store_file(args.store)
    from aiohttp import web
    from localstripe import resources, server

    resources.store.try_load_from_disk()
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(server.app, host=args.host, port=args.port, access_log=logging.getLogger("aiohttp.access"))


if __name__ == "__main__":
    main()


def register_webhook(stripe_api_base: str, url: str, secret: str, webhook_id: str = "tribe") -> bool:
    """Point localstripe's webhooks at ``url``; it keeps registrations in memory, so call this at every start.

    Returns False (and does nothing) for a real Stripe, whose endpoints are configured in its dashboard.
    """
    import httpx

    if not stripe_api_base.startswith(("http://127.0.0.1", "http://localhost")):
        return False
    response = httpx.post(
        f"{stripe_api_base.rstrip('/')}/_config/webhooks/{webhook_id}",
        data={"url": url, "secret": secret},
        timeout=10,
    )
    response.raise_for_status()
    return True
