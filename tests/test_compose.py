"""compose.yaml runs the real processes, from the Dockerfile's image, with settings the code understands."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from shared.cli import main as tribe_cli
from shared.config import SettingsError, known_variables, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

REQUIRED_SETTINGS = frozenset(
    {
        "TRIBE_DATABASE_URL",
        "TRIBE_REDIS_URL",
        "TRIBE_NATS_URL",
        "TRIBE_S3_ENDPOINT_URL",
        "TRIBE_S3_ACCESS_KEY",
        "TRIBE_S3_SECRET_KEY",
        "TRIBE_STRIPE_API_BASE",
        "TRIBE_SMTP_URL",
        "TRIBE_JWT_SECRET",
    }
)
ENGINE_URL_SETTINGS = (
    "TRIBE_DATABASE_URL",
    "TRIBE_REDIS_URL",
    "TRIBE_NATS_URL",
    "TRIBE_S3_ENDPOINT_URL",
    "TRIBE_STRIPE_API_BASE",
    "TRIBE_SMTP_URL",
)
# service -> the arguments given to the image's `tribe` entrypoint
TRIBE_COMMANDS = {
    "api": ["api", "--host", "0.0.0.0", "--port", "8000"],
    "realtime": ["realtime", "--host", "0.0.0.0", "--port", "8001"],
    "worker": ["worker"],
    "migrate": ["migrate"],
    "seed": ["seed"],
}
LONG_RUNNING = ("api", "realtime", "worker")
HEALTH_URLS = {"api": "http://127.0.0.1:8000/health/ready", "realtime": "http://127.0.0.1:8001/health"}

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):?-(?P<default>[^}]*)\}")


@cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert name in services, f"compose.yaml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict)
    return service


def _interpolate(value: str) -> str:
    """What Compose makes of ``value`` when no variable is set in the shell or .env."""
    resolved = _INTERPOLATION.sub(lambda m: "$" if m.group(0) == "$$" else m.group("default"), value)
    assert "$" not in resolved.replace("$$", ""), f"unsupported interpolation in {value!r}"
    return resolved


def _scalar(value: Any) -> str:
    # Compose writes YAML booleans and numbers the JSON way: true, 8000.
    return _interpolate(value) if isinstance(value, str) else json.dumps(value)


def _environment(name: str) -> dict[str, str]:
    """The service's environment as the container sees it; pass-through variables count as unset."""
    raw = _service(name).get("environment") or {}
    pairs = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw) if isinstance(raw, list) else raw
    return {key: _scalar(value) for key, value in pairs.items() if value is not None}


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def _dockerfile_stages() -> list[tuple[str, list[str]]]:
    """(stage name, instructions) for every FROM of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[tuple[str, list[str]]] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            stages.append((words[3] if len(words) >= 4 and words[2].upper() == "AS" else "", []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def test_compose_sets_only_variables_the_settings_know() -> None:
    mentioned = set(re.findall(r"\bTRIBE_[A-Z0-9_]+\b", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert mentioned >= REQUIRED_SETTINGS
    assert mentioned <= known_variables(), f"unknown settings: {sorted(mentioned - known_variables())}"
    for name in _compose()["services"]:
        unknown = {key for key in _environment(name) if key.startswith("TRIBE_")} - known_variables()
        assert not unknown, f"{name}: unknown settings {sorted(unknown)}"


@pytest.mark.parametrize("name", list(TRIBE_COMMANDS))
def test_tribe_services_get_every_required_setting(name: str) -> None:
    environment = _environment(name)
    missing = REQUIRED_SETTINGS - environment.keys()
    assert not missing, f"{name}: missing {sorted(missing)}"
    try:
        settings = load_settings(environment)
    except SettingsError as exc:
        pytest.fail(f"{name}: {exc}")
    assert settings.env == "development"


def test_engine_urls_point_at_compose_services() -> None:
    environment = _environment("api")
    services = _compose()["services"]
    for variable in ENGINE_URL_SETTINGS:
        host = urlsplit(environment[variable]).hostname
        assert host in services, f"{variable} points at {host!r}, which is not a compose service"
        assert "healthcheck" in services[host], f"{host} has no healthcheck to wait on"


@pytest.mark.parametrize("name", list(TRIBE_COMMANDS))
def test_tribe_services_run_the_image_built_from_the_dockerfile(name: str) -> None:
    service = _service(name)
    build = service.get("build")
    assert isinstance(build, dict), f"{name} is not built from the Dockerfile"
    assert (COMPOSE_FILE.parent / build.get("context", ".")).resolve() == ROOT
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    final_stage, instructions = _dockerfile_stages()[-1]
    # No target builds the last stage; an explicit one must name it.
    assert build.get("target", final_stage) == final_stage
    assert service["image"] == _service("api")["image"], "every Tribe process shares one image"
    assert "entrypoint" not in service, "the image's `tribe` entrypoint must stay in place"
    assert 'ENTRYPOINT ["tribe"]' in instructions
    assert any(line.startswith("USER ") and not line.startswith(("USER root", "USER 0")) for line in instructions)


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "tribe" in scripts


@pytest.mark.parametrize(("name", "argv"), list(TRIBE_COMMANDS.items()))
def test_tribe_services_run_the_right_subcommand(name: str, argv: list[str]) -> None:
    assert _argv(_service(name).get("command")) == argv
    command = tribe_cli.commands.get(argv[0])
    assert command is not None, f"`tribe {argv[0]}` does not exist"
    # Parses the options exactly as the container would, without running the command.
    context = command.make_context(argv[0], argv[1:])
    if "--port" in argv:
        assert context.params["host"] == "0.0.0.0"
        assert context.params["port"] == int(argv[argv.index("--port") + 1])


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_processes_wait_for_migrations_and_healthy_engines(name: str) -> None:
    depends_on = _service(name).get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    hosts = {urlsplit(_environment(name)[variable]).hostname for variable in ENGINE_URL_SETTINGS}
    for host in hosts:
        assert host in depends_on, f"{name} does not wait for {host}"
        assert depends_on[host]["condition"] == "service_healthy"
    assert _service("migrate")["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _service("migrate").get("restart") == "no"


@pytest.mark.parametrize(("name", "url"), list(HEALTH_URLS.items()))
def test_http_processes_have_healthchecks_on_their_port(name: str, url: str) -> None:
    service = _service(name)
    test = " ".join(_argv(service["healthcheck"]["test"]))
    assert url in test
    port = str(urlsplit(url).port)
    assert TRIBE_COMMANDS[name][-1] == port
    assert any(str(mapping).endswith(f":{port}") for mapping in service.get("ports", []))


def test_s3_identity_matches_the_settings() -> None:
    environment = _environment("api")
    sources = [entry["source"] if isinstance(entry, dict) else entry for entry in _service("s3").get("configs", [])]
    identities = [
        identity
        for source in sources
        for identity in json.loads(_compose()["configs"][source]["content"]).get("identities", [])
    ]
    credentials = {(c["accessKey"], c["secretKey"]) for identity in identities for c in identity["credentials"]}
    assert (environment["TRIBE_S3_ACCESS_KEY"], environment["TRIBE_S3_SECRET_KEY"]) in credentials
    createbucket = _service("createbucket")
    assert createbucket["depends_on"]["s3"]["condition"] == "service_healthy"
    assert _environment("createbucket")["TRIBE_S3_BUCKET"] == environment["TRIBE_S3_BUCKET"]
    for name in ("api", "worker"):
        assert _service(name)["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert {".venv", ".git", ".tribe"} <= ignored
    # The build needs these: uv reads the lock, hatchling the README.
    assert not {"pyproject.toml", "uv.lock", "README.md", "*.md"} & ignored
