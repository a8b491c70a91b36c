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
