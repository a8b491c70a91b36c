"""``DELETE /v1/users/{id}``: anonymise the account, sign it out, free its seats, cancel its plan, purge its media.

Everything runs for real: the API, a ``tribe worker`` (purge jobs), SeaweedFS and localstripe.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.config import load_settings
from shared.domain.auth.models import AuthSession, RefreshToken
from shared.domain.media.models import Media
from shared.domain.payments.models import Subscription
from shared.domain.users.models import User
from shared.storage import Storage
from tests.api.conftest import Account, MakeAccount
from tests.api.events.helpers import create_event, detail, make_organizer, rsvp
from tests.api.media_support import object_exists, ready_photo
from tests.api.payment_support import GOOD_CARD, create_card, subscribe

Sessions = async_sessionmaker[AsyncSession]


async def delete_account(
    client: httpx.AsyncClient, account: Account, body: Any, user_id: str | None = None
) -> httpx.Response:
    """DELETE /v1/users/{id} with a JSON body (httpx's delete() takes none)."""
    return await client.request("DELETE", f"/v1/users/{user_id or account.id}", json=body, headers=account.headers)


async def user_row(db: Sessions, account: Account) -> User:
    """The stored user row."""
    async with db() as session:
        user = await session.get(User, ids.decode(ids.Prefix.USER, account.id))
    assert user is not None
    return user


async def test_bad_input_wrong_password_and_other_users_change_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    user, other = await make_account(), await make_account()
    for body in ({}, {"password": ""}, {"password": user.password, "extra": 1}):
        bad = await delete_account(client, user, body)
        assert bad.status_code == 422, bad.text
        assert bad.headers["content-type"].startswith("application/problem+json")
    malformed = await client.request(
        "DELETE", f"/v1/users/{user.id}", content=b"{", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400

    wrong = await delete_account(client, user, {"password": "not-my-password"})
    assert wrong.status_code == 403, wrong.text
    assert wrong.json()["code"] == "wrong_password"

    # Someone else's account, even with that account's real password: refused.
    theirs = await delete_account(client, user, {"password": other.password}, user_id=other.id)
    assert theirs.status_code == 403
    assert theirs.json()["code"] == "not_your_account"
    missing = await delete_account(
        client, user, {"password": user.password}, user_id=ids.encode(ids.Prefix.USER, ids.uuid7())
    )
    assert missing.status_code == 404

    for account in (user, other):
        row = await user_row(db, account)
        assert (row.status, row.deleted_at, row.email) == ("active", None, account.email)
        assert (await client.get("/v1/users/me", headers=account.headers)).status_code == 200


async def test_deletion_anonymises_signs_out_frees_seats_and_purges_media(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    db: Sessions,
    engine_env: dict[str, str],
    worker: None,
) -> None:
    organizer = await make_organizer(make_account, db)
    user = await make_account(display_name="Dana Deleted", city="Lisbon")
    full = await create_event(client, organizer, capacity=1)
    gated = await create_event(client, organizer, requires_approval=True)
    waiting, bystander = await make_account(), await make_account()
    assert (await rsvp(client, full, user))["status"] == "confirmed"
    assert (await rsvp(client, full, waiting))["status"] == "waitlisted"
    assert (await rsvp(client, gated, user))["status"] == "pending_approval"
    media_id = await ready_photo(client, user)
    async with db() as session:
        media = await session.get(Media, ids.decode(ids.Prefix.MEDIA, media_id))
        assert media is not None
        keys = [media.object_key, *(str(k) for k in media.variants.values())]
    storage = Storage(load_settings(engine_env))
    assert all([await object_exists(storage, key) for key in keys])
    subscribed = await subscribe(client, user, await create_card(engine_env, GOOD_CARD))
    assert subscribed.status_code == 201, subscribed.text

    deleted = await delete_account(client, user, {"password": user.password})
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    # Signed out everywhere: the access token and the refresh token are dead; the old login too.
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 401
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401
    login = await client.post("/v1/auth/login", json={"email": user.email, "password": user.password})
    assert login.status_code == 401
    row = await user_row(db, user)
    assert row.status == "deleted"
    assert row.deleted_at is not None
    assert user.email.split("@")[0] not in row.email
    assert (row.display_name, row.city, row.bio, row.avatar_url) == ("Deleted user", None, None, None)
    async with db() as session:
        sessions = list(await session.scalars(select(AuthSession.revoked_at).where(AuthSession.user_id == row.id)))
        tokens = await session.scalars(
            select(RefreshToken.id)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(AuthSession.user_id == row.id)
        )
        assert sessions
        assert all(at is not None for at in sessions)
        assert list(tokens) == []
        sub = await session.scalar(select(Subscription).where(Subscription.user_id == row.id))
    assert sub is not None
    assert sub.cancel_at_period_end is True
    profile = await client.get(f"/v1/users/{user.id}", headers=bystander.headers)
    assert profile.status_code == 200
    assert profile.json()["display_name"] == "Deleted user"

    # The seat went to the next in line; the pending request is withdrawn.
    assert (await detail(client, full, waiting))["my_rsvp"]["status"] == "confirmed"
    attendees = await client.get(f"/v1/events/{gated}/attendees", headers=organizer.headers)
    assert [a["status"] for a in attendees.json()["items"]] == ["cancelled"]

    # The purge_media job removes the objects, then the row.
    async with asyncio.timeout(20):
        while any([await object_exists(storage, key) for key in keys]):
            await asyncio.sleep(0.1)
        while True:
            async with db() as session:
                if await session.get(Media, ids.decode(ids.Prefix.MEDIA, media_id)) is None:
                    break
            await asyncio.sleep(0.1)

    # Deleting again is not possible: the token is revoked.
    again = await delete_account(client, user, {"password": user.password})
    assert again.status_code == 401


async def test_concurrent_deletions_delete_once(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions
) -> None:
    organizer = await make_organizer(make_account, db)
    event_id = await create_event(client, organizer, capacity=1)
    user, waiting = await make_account(), await make_account()
    assert (await rsvp(client, event_id, user))["status"] == "confirmed"
    assert (await rsvp(client, event_id, waiting))["status"] == "waitlisted"
    results = await asyncio.gather(*(delete_account(client, user, {"password": user.password}) for _ in range(3)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(204) == 1, [r.text for r in results]
    assert set(codes) <= {204, 401, 404}
    seen = await detail(client, event_id, waiting)
    assert seen["my_rsvp"]["status"] == "confirmed"
    assert seen["attendees"]["count"] == 1


async def test_deletion_cancels_creator_and_club_tier_subscriptions(
    client: httpx.AsyncClient, make_account: MakeAccount, db: Sessions, engine_env: dict[str, str]
) -> None:
    creator, fan = await make_account(), await make_account()
    tier = await client.post(
        f"/v1/users/{creator.id}/tiers", json={"name": "Backstage", "amount_cents": 700}, headers=creator.headers
    )
    assert tier.status_code == 201, tier.text
    joined = await client.post(
        f"/v1/tiers/{tier.json()['id']}/subscribe",
        json={"payment_method_id": await create_card(engine_env, GOOD_CARD)},
        headers=fan.headers,
    )
    assert joined.status_code == 201, joined.text

    assert (await delete_account(client, fan, {"password": fan.password})).status_code == 204

    async with db() as session:
        sub = await session.scalar(
            select(Subscription).where(
                Subscription.user_id == ids.decode(ids.Prefix.USER, fan.id),
                Subscription.member_tier_id == ids.decode(ids.Prefix.MEMBER_TIER, tier.json()["id"]),
            )
        )
    assert sub is not None
    assert sub.cancel_at_period_end is True
