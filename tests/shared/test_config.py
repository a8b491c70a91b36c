"""Settings: required variables, parsing, and errors that name the variable."""

from __future__ import annotations

import pytest

from shared.config import SettingsError, known_variables, load_settings

VALID = {
    "TRIBE_DATABASE_URL": "postgresql://u@127.0.0.1:5432/tribe",
    "TRIBE_REDIS_URL": "redis://127.0.0.1:6379/0",
    "TRIBE_NATS_URL": "nats://127.0.0.1:4222",
    "TRIBE_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
    "TRIBE_S3_ACCESS_KEY": "key",
    "TRIBE_S3_SECRET_KEY": "secret",
    "TRIBE_STRIPE_API_BASE": "http://127.0.0.1:8420",
    "TRIBE_SMTP_URL": "smtp://127.0.0.1:2525",
    "TRIBE_JWT_SECRET": "s" * 40,
}


def test_valid_environment_parses_with_types() -> None:
    settings = load_settings({**VALID, "TRIBE_INVITE_ONLY": "true", "TRIBE_MAX_BODY_BYTES": "2048"})
    assert settings.invite_only is True
    assert settings.max_body_bytes == 2048
    assert settings.async_database_url == "postgresql+asyncpg://u@127.0.0.1:5432/tribe"


@pytest.mark.parametrize("variable", sorted(VALID))
def test_missing_required_variable_is_named(variable: str) -> None:
    env = {k: v for k, v in VALID.items() if k != variable}
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRIBE_MAX_BODY_BYTES", "lots"),
        ("TRIBE_INVITE_ONLY", "perhaps"),
        ("TRIBE_JWT_SECRET", "short"),
        ("TRIBE_DATABASE_URL", "mysql://x/y"),
        ("TRIBE_REDIS_URL", "localhost"),
    ],
)
def test_malformed_value_is_named(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({**VALID, variable: value})


def test_known_variables_cover_the_required_ones() -> None:
    assert set(VALID) <= known_variables()
