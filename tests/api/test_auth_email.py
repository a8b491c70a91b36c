"""Email verification and password reset, with the mails read from the SMTP sink."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import OutboxRow
from shared.clock import utcnow
from shared.domain.auth.models import OneTimeToken
from shared.domain.auth.secrets import hash_secret
from tests.api.conftest import PASSWORD, MakeAccount, WaitForMail, mailed_token, unique_email

NEW_PASSWORD = "a-brand-new-password"


async def test_signup_mails_a_verification_token_that_works_once(
    client: httpx.AsyncClient, make_account: MakeAccount, wait_for_mail: WaitForMail
) -> None:
    account = await make_account()
    mail = await wait_for_mail(account.email, "Confirm your email")
    token = mailed_token(mail, "ev")
    assert (await client.post("/v1/auth/verify-email", json={"token": token})).status_code == 204
    me = (await client.get("/v1/users/me", headers=account.headers)).json()
    assert me["email_verified"] is True
    again = await client.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 422
    assert again.json()["code"] == "invalid_token"
    assert (
        await client.post("/v1/auth/verify-email", json={"token": "ev_made-up-token-000000000000"})
    ).status_code == 422


async def test_password_reset_end_to_end(
    client: httpx.AsyncClient, make_account: MakeAccount, wait_for_mail: WaitForMail
) -> None:
    account = await make_account()
    requested = await client.post("/v1/auth/password-reset", json={"email": account.email})
    assert requested.status_code == 202
    token = mailed_token(await wait_for_mail(account.email, "Reset your Tribe password"), "pr")

    # A bad new password is refused and does not spend the token.
    short = await client.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"})
    assert short.status_code == 422
    confirmed = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204

    # Every session is gone; only the new password works; the token is single-use.
    assert (await client.get("/v1/users/me", headers=account.headers)).status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})).status_code == 401
    old = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post("/v1/auth/login", json={"email": account.email, "password": NEW_PASSWORD})
    assert new.status_code == 200
    reused = await client.post("/v1/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD})
    assert reused.status_code == 422
    assert reused.json()["code"] == "invalid_token"


async def test_unknown_email_gets_202_and_no_mail(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    email = unique_email("nobody")
    response = await client.post("/v1/auth/password-reset", json={"email": email})
    assert response.status_code == 202
    async with db() as session:
        queued = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.payload["to"].astext == email)
        )
    assert queued == 0


async def test_expired_and_superseded_reset_tokens_are_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    wait_for_mail: WaitForMail,
    db: async_sessionmaker[AsyncSession],
) -> None:
    account = await make_account()
    await client.post("/v1/auth/password-reset", json={"email": account.email})
    first = mailed_token(await wait_for_mail(account.email, "Reset your Tribe password"), "pr")
    await client.post("/v1/auth/password-reset", json={"email": account.email})
    async with asyncio.timeout(15):
        while (second := mailed_token(await wait_for_mail(account.email, "Reset your Tribe password"), "pr")) == first:
            await asyncio.sleep(0.05)

    superseded = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD}
    )
    assert superseded.status_code == 422

    # The newest token stops working once its 30 minutes are over.
    async with db.begin() as session:
        await session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.token_hash == hash_secret(second))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await client.post("/v1/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD})
    assert expired.status_code == 422
    login = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert login.status_code == 200
