"""Settings read from ``TRIBE_*`` environment variables, once per process."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import msgspec

ENV_PREFIX = "TRIBE_"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of the three processes. Field ``foo_bar`` is read from ``TRIBE_FOO_BAR``."""

    # Engines
    database_url: str
    redis_url: str
    nats_url: str
    s3_endpoint_url: str
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str = "tribe-media"
    s3_region: str = "us-east-1"
    # The S3 address clients are given in presigned URLs; defaults to s3_endpoint_url.
    s3_public_url: str | None = None
    stripe_api_base: str
    stripe_api_key: str = "sk_test_tribe"
    stripe_webhook_secret: str = "whsec_tribe_dev"
    smtp_url: str
    mail_from: str = "Tribe <no-reply@tribe.local>"
    # Expo push API endpoint (e.g. https://exp.host/--/api/v2/push/send); `tribe up` runs a local sink.
    push_url: str | None = None
    push_access_token: str | None = None

    # Auth
    jwt_secret: str
    jwt_issuer: str = "tribe"
    jwt_audience: str = "tribe-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    password_reset_ttl_minutes: int = 30
    email_verify_ttl_hours: int = 48

    # Public addresses, used in links and the `tribe up` table
    public_api_url: str = "http://127.0.0.1:8000"
    public_realtime_url: str = "ws://127.0.0.1:8001"
    public_app_url: str = "http://127.0.0.1:8000"

    # Behaviour
    env: str = "development"
    log_level: str = "INFO"
    log_json: bool = True
    max_body_bytes: int = 1_048_576
    auth_rate_limit_per_minute: int = 10
    invite_only: bool = False
    db_pool_size: int = 10
    # Chat: messages a user may send per window (socket and REST together), typing indicator lifetime.
    chat_message_rate_limit: int = 20
    chat_message_rate_window_seconds: int = 10
    chat_typing_ttl_ms: int = 5000
    # Boosts: price per hour of each placement (cents), and the longest boost one may buy.
    boost_discover_feed_cents_per_hour: int = 200
    boost_search_cents_per_hour: int = 150
    boost_max_hours: int = 720
    # The platform's cut of tickets and of creator and club tier revenue, in basis points (500 = 5%).
    platform_fee_bps: int = 500
    # Gateway: browser Origins allowed to open a socket (comma list); empty allows every Origin.
    ws_allowed_origins: str = ""
    # Perf: verified principals are cached this long per API process (0 disables); triggers
    # NOTIFY access_changed so a revoke, ban or role change still applies at once.
    access_cache_seconds: int = 30
    # Perf: blocklist terms are cached this long per process (0 disables); a trigger NOTIFYs
    # blocklist_changed so a new or removed term applies at once.
    blocklist_cache_seconds: int = 30
    # Paid tickets: how long a seat is held while its payment runs, how long a waitlist offer stays open,
    # and who pays organizers out (manual | stripe_connect).
    ticket_hold_seconds: int = 300
    ticket_offer_seconds: int = 3600
    payout_provider: str = "manual"

    def __post_init__(self) -> None:
        if len(self.jwt_secret) < 32:
            raise SettingsError(f"{ENV_PREFIX}JWT_SECRET must be at least 32 characters long")
        for name in ("database_url", "redis_url", "nats_url", "s3_endpoint_url", "smtp_url", "stripe_api_base"):
            value: str = getattr(self, name)
            if "://" not in value:
                raise SettingsError(f"{env_name(name)} must be a URL, got {value!r}")
        if not self.database_url.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise SettingsError(f"{ENV_PREFIX}DATABASE_URL must be a postgresql:// URL")

    @property
    def ws_origins(self) -> frozenset[str]:
        """``ws_allowed_origins`` parsed: normalised origins, empty meaning any."""
        return frozenset(normalise_origin(o) for o in self.ws_allowed_origins.split(",") if o.strip())

    @property
    def async_database_url(self) -> str:
        """The database URL with the asyncpg driver SQLAlchemy needs."""
        return asyncpg_url(self.database_url)


def normalise_origin(origin: str) -> str:
    """An Origin as browsers send it: lower case, no trailing slash, no surrounding spaces."""
    return origin.strip().rstrip("/").lower()


def asyncpg_url(url: str) -> str:
    """``url`` with the ``postgresql+asyncpg`` scheme SQLAlchemy needs."""
    return f"postgresql+asyncpg://{url.split('://', 1)[1]}"


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def known_variables() -> frozenset[str]:
    """Every ``TRIBE_*`` variable the settings understand."""
    return frozenset(env_name(f) for f in Settings.__struct_fields__)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``), naming any bad variable."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        value = environ.get(env_name(field))
        if value is not None:
            raw[field] = value
    missing = [env_name(f) for f in Settings.__struct_fields__ if f not in raw and f in _required_fields()]
    if missing:
        raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
    try:
        # strict=False parses "8000" and "true" from the string environment.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec reports "... - at `$.field`"; translate the path into the variable.
        message = str(exc)
        if "`$." in message:
            field = message.rsplit("`$.", 1)[1].rstrip("`")
            message = f"{env_name(field)}: {message.rsplit(' - at ', 1)[0]}"
        raise SettingsError(message) from None


@functools.cache
def _required_fields() -> frozenset[str]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(f.name for f in info.fields if f.required)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use (inside start-up, never at import)."""
    return load_settings()
