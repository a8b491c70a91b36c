"""Vouches through real HTTP: one standing vouch per pair, revocable, listed on the vouchee."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import bus, ids
from shared.domain.social.models import Vouch
from tests.api.conftest import Account, MakeAccount
from tests.api.social.helpers import count, events, problem, uid


async def vouches(db: async_sessionmaker[AsyncSession], voucher: Account, vouchee: Account, active: bool = True) -> int:
    where = [Vouch.voucher_id == uid(voucher.id), Vouch.vouchee_id == uid(vouchee.id)]
    if active:
        where.append(Vouch.revoked_at.is_(None))
    return await count(db, Vouch, *where)


async def test_vouch_list_repeat_revoke_and_vouch_again(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    host = await make_account(display_name="Host")
    guest = await make_account(display_name="Guest")
    viewer = await make_account()

    created = await client.post(
        "/v1/vouches", json={"user_id": host.id, "note": "  Great   host, very kind "}, headers=guest.headers
    )
    assert created.status_code == 201, created.text
    vouch = created.json()
    assert vouch["id"].startswith("vch_")
    assert vouch["voucher_id"] == guest.id
    assert vouch["user_id"] == host.id
    assert vouch["note"] == "Great host, very kind"

    created_events = [e for e in await events(db, "vouch.created") if isinstance(e, bus.VouchCreated)]
    assert [
        (e.voucher_id, e.vouchee_id) for e in created_events if e.vouch_id == ids.decode(ids.Prefix.VOUCH, vouch["id"])
    ] == [(uid(guest.id), uid(host.id))]

    listed = await client.get(f"/v1/users/{host.id}/vouches", headers=viewer.headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item == {
        "id": vouch["id"],
        "voucher": {"id": guest.id, "display_name": "Guest", "avatar_url": None},
        "note": "Great host, very kind",
        "created_at": vouch["created_at"],
    }
    assert (await client.get("/v1/users/me/vouches", headers=host.headers)).json()["items"] == [item]

    problem(
        await client.post("/v1/vouches", json={"user_id": host.id, "note": "again"}, headers=guest.headers),
        409,
        "already_vouched",
    )
    # The reverse direction is a different pair.
    assert (
        await client.post("/v1/vouches", json={"user_id": guest.id, "note": "good guest"}, headers=host.headers)
    ).status_code == 201

    # Only the voucher may revoke; to anyone else the vouch does not exist.
    for who in (host, viewer):
        problem(await client.delete(f"/v1/vouches/{vouch['id']}", headers=who.headers), 404, "vouch_not_found")
    assert (await client.delete(f"/v1/vouches/{vouch['id']}", headers=guest.headers)).status_code == 204
    problem(await client.delete(f"/v1/vouches/{vouch['id']}", headers=guest.headers), 404)
    assert (await client.get(f"/v1/users/{host.id}/vouches", headers=viewer.headers)).json()["items"] == []

    again = await client.post("/v1/vouches", json={"user_id": host.id, "note": "still great"}, headers=guest.headers)
    assert again.status_code == 201
    assert again.json()["id"] != vouch["id"]
    assert await vouches(db, guest, host) == 1
    assert await vouches(db, guest, host, active=False) == 2


async def test_concurrent_vouches_give_exactly_one(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    host = await make_account()
    guest = await make_account()
    responses = await asyncio.gather(
        *(
            client.post("/v1/vouches", json={"user_id": host.id, "note": f"try {i}"}, headers=guest.headers)
            for i in range(8)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_vouched"}
    assert await vouches(db, guest, host, active=False) == 1


async def test_received_vouches_paginate(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    host = await make_account()
    guests = [await make_account() for _ in range(5)]
    for guest in guests:
        ok = await client.post("/v1/vouches", json={"user_id": host.id, "note": "ok"}, headers=guest.headers)
        assert ok.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/users/{host.id}/vouches", params=params, headers=host.headers)).json()
        seen += [v["voucher"]["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [g.id for g in reversed(guests)]


async def test_bad_vouches_are_rejected_and_store_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    guest = await make_account()
    host = await make_account()
    missing = ids.encode(ids.Prefix.USER, ids.uuid7())
    cases = [
        ({"user_id": guest.id, "note": "me"}, 422),
        ({"user_id": host.id, "note": "   "}, 422),
        ({"user_id": host.id, "note": ""}, 422),
        ({"user_id": host.id, "note": "x" * 501}, 422),
        ({"user_id": host.id}, 422),
        ({"user_id": "usr_malformed", "note": "ok"}, 422),
        ({"user_id": host.id, "note": "ok", "voucher_id": host.id}, 422),
        ({"user_id": missing, "note": "ok"}, 404),
    ]
    for body, status in cases:
        problem(await client.post("/v1/vouches", json=body, headers=guest.headers), status)
    problem(await client.get(f"/v1/users/{missing}/vouches", headers=guest.headers), 404, "user_not_found")
    problem(await client.delete("/v1/vouches/usr_x", headers=guest.headers), 404)
    assert await count(db, Vouch, Vouch.voucher_id == uid(guest.id)) == 0
