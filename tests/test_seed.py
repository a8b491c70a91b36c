"""``tribe seed`` loads the demo community once, however often it runs."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from shared.dev.seed import DEMO_PASSWORD, DEMO_USERS
from tests.support import ROOT


def run_seed(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "seed"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout + done.stderr


def test_seed_is_idempotent_and_demo_users_can_log_in(engine_env: dict[str, str], api_url: str) -> None:
    run_seed(engine_env)
    again = run_seed(engine_env)
    assert f"0 new of {len(DEMO_USERS)} users" in again
    email = DEMO_USERS[0][0]
    login = httpx.post(f"{api_url}/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    assert login.status_code == 200
    me = httpx.get(f"{api_url}/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["email_verified"] is True
    assert "organizer" in me.json()["roles"]


def test_seeded_users_get_recommendations_with_reasons(engine_env: dict[str, str], api_url: str) -> None:
    run_seed(engine_env)
    login = httpx.post(f"{api_url}/v1/auth/login", json={"email": "jordan@demo.tribe.dev", "password": DEMO_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    events = httpx.get(f"{api_url}/v1/events/recommendations", headers=headers).json()["items"]
    # Jordan's friend Alex is going to the photo walk, and Jordan likes photography.
    assert events[0]["title"] == "Golden Hour Photo Walk"
    assert events[0]["reason"] == "Friends attending"
    me = httpx.get(f"{api_url}/v1/users/me", headers=headers).json()["id"]
    people = httpx.get(f"{api_url}/v1/users/{me}/recommendations", headers=headers).json()["items"]
    assert people
    assert all(p["icebreaker_prompt"] for p in people)
    clubs = httpx.get(f"{api_url}/v1/clubs/recommendations", headers=headers).json()["items"]
    assert "Austin Adventurers" not in [c["name"] for c in clubs]  # already a member
