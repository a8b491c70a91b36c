"""Helpers for discovery tests: a tiny community with known right answers, built through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.api.conftest import Account


def town() -> str:
    """A city name no other test uses, so candidates from other tests never mix in."""
    return f"Testville {uuid.uuid4().hex[:8]}"


def tag() -> str:
    """An interest/tag no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


async def befriend(client: httpx.AsyncClient, a: Account, b: Account) -> None:
    """Make ``a`` and ``b`` friends through the friend-request endpoints."""
    sent = await client.post("/v1/friends/requests", json={"user_id": b.id}, headers=a.headers)
    assert sent.status_code in (200, 201), sent.text
    accepted = await client.post(f"/v1/friends/requests/{sent.json()['id']}/accept", headers=b.headers)
    assert accepted.status_code == 200, accepted.text


async def event_recs(client: httpx.AsyncClient, user: Account, **params: Any) -> list[dict[str, Any]]:
    """The caller's event recommendations (one page of 100)."""
    response = await client.get("/v1/events/recommendations", params={"limit": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def people_recs(client: httpx.AsyncClient, user: Account) -> list[dict[str, Any]]:
    """The caller's people recommendations (one page of 100)."""
    response = await client.get(f"/v1/users/{user.id}/recommendations", params={"limit": 100}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
