"""The baseline: a Litestar hello-world answering a msgspec body, served the same way as the API."""

from __future__ import annotations

import msgspec
from litestar import Litestar, get


class Hello(msgspec.Struct):
    """The smallest useful body."""

    message: str


@get("/hello", sync_to_thread=False)
def hello() -> Hello:
    """Say hello."""
    return Hello(message="hello, world")


def create_app() -> Litestar:
    """The baseline app (granian factory)."""
    return Litestar(route_handlers=[hello], logging_config=None)
