"""Cross-cutting API behaviour: problem+json, body cap, request ids, health, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.api.conftest import PASSWORD, MakeAccount, unique_email
from tests.support import free_port, start_process, stop_process, wait_http


async def test_malformed_json_is_400_problem_json(client: httpx.AsyncClient) -> None:
    for body in (b'{"email":', b"{not json}", b"\xff\xfe"):
        response = await client.post("/v1/users", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "malformed_json"
        assert problem["status"] == 400
        assert {"type", "title", "status", "detail", "code"} <= set(problem)


async def test_wrong_json_type_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/users", json=[1, 2, 3])
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_oversized_body_is_413_and_stores_nothing(client: httpx.AsyncClient, api_url: str) -> None:
    email = unique_email()
    body = json.dumps({"email": email, "password": PASSWORD, "display_name": "x" * 2_000_000}).encode()
    # A raw socket: the server answers 413 from the headers, before the body is sent, and an
    # HTTP client still uploading would see the connection close under it.
    host, port = api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /v1/users HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:1024]
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(
            next(line.split(":")[1] for line in head.split("\r\n") if line.lower().startswith("content-length"))
        )
        problem = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert head.startswith("HTTP/1.1 413")
    assert "application/problem+json" in head
    assert problem["code"] == "payload_too_large"
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 401


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health/live")
    assert len(generated.headers["x-request-id"]) >= 16
    unsafe = await client.get("/health/live", headers={"X-Request-Id": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    # Errors raised before any route (401, 404) carry it too.
    assert "x-request-id" in (await client.get("/v1/users/me")).headers
    assert "x-request-id" in (await client.get("/v1/nowhere")).headers


async def test_unknown_route_and_method_are_problem_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = await client.delete("/v1/auth/login")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_health_endpoints(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "nats": "ok"}}


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/health/live")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "tribe_api_requests_total" in response.text


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = await client.get("/schema/openapi.json")
    assert spec.status_code == 200
    document = spec.json()
    assert document["openapi"].startswith("3.1")
    for path in ("/v1/users", "/v1/users/me", "/v1/users/{user_id}", "/v1/auth/login", "/v1/auth/refresh"):
        assert path in document["paths"], path
    docs = await client.get("/docs", follow_redirects=True)
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


async def test_logs_carry_request_ids_but_never_secrets(
    client: httpx.AsyncClient, data_dir: Path, make_account: MakeAccount
) -> None:
    account = await make_account()
    await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    await client.get("/v1/users/me", headers={**account.headers, "X-Request-Id": "trace-me-42"})
    log = (data_dir / "logs" / "api.log").read_text()
    assert '"request_id": "trace-me-42"' in log
    assert account.id in log  # the user id is bound to the request's log line
    for secret in (account.password, account.refresh_token, account.access_token):
        assert secret not in log


def test_readiness_is_503_when_an_engine_is_down(engine_env: dict[str, str], data_dir: Path) -> None:
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    log = data_dir / "logs" / "api-no-redis.log"
    process = start_process(
        ["shared.cli", "api", "--port", str(port)], {**engine_env, "TRIBE_REDIS_URL": dead_redis}, log
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/live", 60, process, log)
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["nats"] == "ok"
        assert body["checks"]["redis"].startswith("error")
    finally:
        assert stop_process(process) == 0


def test_a_missing_setting_stops_start_up_naming_it(engine_env: dict[str, str], data_dir: Path) -> None:
    env = {k: v for k, v in engine_env.items() if k != "TRIBE_NATS_URL"}
    log = data_dir / "logs" / "api-no-nats.log"
    process = start_process(["shared.cli", "api", "--port", str(free_port())], {**env, "TRIBE_NATS_URL": ""}, log)
    assert process.wait(timeout=30) == 2
    assert "TRIBE_NATS_URL" in log.read_text()
