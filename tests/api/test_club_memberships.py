"""Memberships through real HTTP: requests, invitations, invite links, roles, bans, transfers, circles."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.domain.clubs.models import ClubInvitation, ClubInviteLink
from tests.api.club_support import add_member, ban, create_club, join, memberships, outbox_events, stored_count, uuid_of
from tests.api.conftest import MakeAccount, WaitForMail, mailed_token, unique_email


async def role_of(client: httpx.AsyncClient, club_id: str, viewer_headers: dict[str, str], user_id: str) -> str | None:
    page = (await client.get(f"/v1/clubs/{club_id}/members", params={"limit": 100}, headers=viewer_headers)).json()
    return next((m["role"] for m in page["items"] if m["user"]["id"] == user_id), None)


async def test_join_requests_listed_approved_and_rejected(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, member, alice, bob = [await make_account(display_name=n) for n in "OMXAB"]
    club = await create_club(client, owner, privacy_level="private")
    await add_member(client, club, owner, moderator, "moderator")
    await add_member(client, club, owner, member)
    for user in (alice, bob):
        response = await client.post(f"/v1/clubs/{club['id']}/join", json={"message": "hi!"}, headers=user.headers)
        assert response.json()["status"] == "pending"
    refused = await client.get(f"/v1/clubs/{club['id']}/requests", headers=member.headers)
    assert refused.status_code == 403
    first = (
        await client.get(f"/v1/clubs/{club['id']}/requests", params={"limit": 1}, headers=moderator.headers)
    ).json()
    assert [r["user"]["id"] for r in first["items"]] == [alice.id]
    assert first["items"][0]["message"] == "hi!"
    assert first["items"][0]["user"]["display_name"] == "A"
    second = (
        await client.get(
            f"/v1/clubs/{club['id']}/requests", params={"cursor": first["next_cursor"]}, headers=moderator.headers
        )
    ).json()
    assert [r["user"]["id"] for r in second["items"]] == [bob.id]
    assert second["next_cursor"] is None
    approve = f"/v1/clubs/{club['id']}/requests/{alice.id}/approve"
    assert (await client.post(approve, headers=member.headers)).status_code == 403
    approved = await client.post(approve, headers=moderator.headers)
    assert approved.status_code == 200
    assert approved.json() == {"status": "approved"}
    rejected = await client.post(f"/v1/clubs/{club['id']}/requests/{bob.id}/reject", headers=moderator.headers)
    assert rejected.json() == {"status": "rejected"}
    again = await client.post(f"/v1/clubs/{club['id']}/requests/{bob.id}/reject", headers=moderator.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "request_not_found"
    assert await stored_count(db, club["id"]) == (4, 4)
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=alice.headers)).json()["membership"] == {
        "role": "member",
        "status": "active",
    }
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=bob.headers)).json()["membership"] is None
    stranger = ids.encode(ids.Prefix.USER, uuid.uuid4())
    for path in (f"/v1/clubs/{club['id']}/requests/{stranger}/approve", f"/v1/clubs/{club['id']}/requests/bad/approve"):
        assert (await client.post(path, headers=owner.headers)).status_code == 404
    # A request in another club cannot be approved through this one.
    other = await create_club(client, owner, privacy_level="private")
    carol = await make_account()
    assert await join(client, other["id"], carol) == "pending"
    wrong = await client.post(f"/v1/clubs/{club['id']}/requests/{carol.id}/approve", headers=owner.headers)
    assert wrong.status_code == 404
    assert await stored_count(db, other["id"]) == (1, 1)


async def test_concurrent_approvals_have_one_effect(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, admin, user = await make_account(), await make_account(), await make_account()
    club = await create_club(client, owner, privacy_level="private")
    await add_member(client, club, owner, admin, "admin")
    assert await join(client, club["id"], user) == "pending"
    approve = f"/v1/clubs/{club['id']}/requests/{user.id}/approve"
    responses = await asyncio.gather(
        *(client.post(approve, headers=(owner if i % 2 else admin).headers) for i in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8
    assert await stored_count(db, club["id"]) == (3, 3)
    joined = await outbox_events(
        db,
        "club.member_joined",
        club_id=uuid_of(ids.Prefix.CLUB, club["id"]),
        user_id=uuid_of(ids.Prefix.USER, user.id),
    )
    assert len(joined) == 1


async def test_leave_and_owner_must_transfer(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, member, requester, outsider = [await make_account() for _ in range(4)]
    club = await create_club(client, owner, settings={"join_approval": True})
    await add_member(client, club, owner, member)
    assert await join(client, club["id"], requester) == "pending"
    blocked = await client.delete(f"/v1/clubs/{club['id']}/membership", headers=owner.headers)
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "owner_must_transfer"
    assert (await client.delete(f"/v1/clubs/{club['id']}/membership", headers=member.headers)).status_code == 204
    assert (await client.delete(f"/v1/clubs/{club['id']}/membership", headers=requester.headers)).status_code == 204
    missing = await client.delete(f"/v1/clubs/{club['id']}/membership", headers=outsider.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_a_member"
    assert await stored_count(db, club["id"]) == (1, 1)
    assert await memberships(db, club["id"]) == 1
    transferred = await client.post(
        f"/v1/clubs/{club['id']}/transfer", json={"user_id": member.id}, headers=owner.headers
    )
    assert transferred.status_code == 409
    assert transferred.json()["code"] == "not_an_active_member"


async def test_transfer_ownership(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, admin, member = [await make_account() for _ in range(3)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, admin, "admin")
    await add_member(client, club, owner, member)
    refused = await client.post(f"/v1/clubs/{club['id']}/transfer", json={"user_id": member.id}, headers=admin.headers)
    assert refused.status_code == 403
    for bad in ({"user_id": "usr_bad"}, {"user_id": member.id, "extra": 1}, {}):
        invalid = await client.post(f"/v1/clubs/{club['id']}/transfer", json=bad, headers=owner.headers)
        assert invalid.status_code == 422, bad
    response = await client.post(f"/v1/clubs/{club['id']}/transfer", json={"user_id": member.id}, headers=owner.headers)
    assert response.status_code == 200
    assert response.json() == {"user_id": member.id, "role": "owner", "status": "active"}
    detail = (await client.get(f"/v1/clubs/{club['id']}", headers=owner.headers)).json()
    assert detail["owner_id"] == member.id
    assert detail["membership"] == {"role": "admin", "status": "active"}
    assert (await client.delete(f"/v1/clubs/{club['id']}/membership", headers=owner.headers)).status_code == 204
    assert (await client.delete(f"/v1/clubs/{club['id']}", headers=member.headers)).status_code == 204


async def test_role_changes_and_escalation_attempts(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner, admin, admin2, moderator, member, member2 = [await make_account() for _ in range(6)]
    club = await create_club(client, owner)
    await add_member(client, club, owner, admin, "admin")
    await add_member(client, club, owner, admin2, "admin")
    await add_member(client, club, owner, moderator, "moderator")
    await add_member(client, club, owner, member)
    await add_member(client, club, owner, member2)
    base = f"/v1/clubs/{club['id']}/members"

    async def set_role(actor_headers: dict[str, str], target: str, role: str) -> httpx.Response:
        return await client.patch(f"{base}/{target}", json={"role": role}, headers=actor_headers)

    # Owner is granted only by transfer.
    assert (await set_role(admin.headers, member.id, "owner")).status_code == 422
    assert (await set_role(owner.headers, member.id, "owner")).status_code == 422
    # A member cannot promote anyone, themself included.
    assert (await set_role(member.headers, member.id, "admin")).status_code == 403
    assert (await set_role(member.headers, member2.id, "moderator")).status_code == 403
    # A moderator cannot change roles at all.
    assert (await set_role(moderator.headers, member.id, "moderator")).status_code == 403
    # Nobody changes their own role.
    own = await set_role(admin.headers, admin.id, "member")
    assert own.status_code == 403
    assert own.json()["code"] == "cannot_target_self"
    # An admin cannot demote another admin or the owner.
    assert (await set_role(admin.headers, admin2.id, "member")).status_code == 403
    assert (await set_role(admin.headers, owner.id, "member")).status_code == 403
    # An admin can promote up to admin and demote moderators.
    promoted = await set_role(admin.headers, member.id, "moderator")
    assert promoted.status_code == 200
    assert promoted.json() == {"user_id": member.id, "role": "moderator", "status": "active"}
    assert (await set_role(admin.headers, moderator.id, "member")).status_code == 200
    # The owner can demote admins.
    assert (await set_role(owner.headers, admin2.id, "member")).status_code == 200
    assert await role_of(client, club["id"], owner.headers, admin.id) == "admin"
    assert await role_of(client, club["id"], owner.headers, admin2.id) == "member"
    assert await role_of(client, club["id"], owner.headers, member.id) == "moderator"
    assert await role_of(client, club["id"], owner.headers, moderator.id) == "member"
    assert await role_of(client, club["id"], owner.headers, owner.id) == "owner"
    # Unknown roles, users and non-members.
    assert (await set_role(owner.headers, member.id, "superuser")).status_code == 422
    stranger = await make_account()
    missing = await set_role(owner.headers, stranger.id, "moderator")
    assert missing.status_code == 404
    assert missing.json()["code"] == "member_not_found"
    assert (await set_role(owner.headers, "usr_garbage", "moderator")).status_code == 404


async def test_remove_and_ban_respect_rank(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, admin, moderator, member, member2 = [await make_account() for _ in range(5)]
    club = await create_club(client, owner, privacy_level="private")
    await add_member(client, club, owner, admin, "admin")
    await add_member(client, club, owner, moderator, "moderator")
    await add_member(client, club, owner, member)
    await add_member(client, club, owner, member2)
    bans = f"/v1/clubs/{club['id']}/bans"
    # A moderator banning an admin, an admin banning an admin or the owner: refused.
    assert (await client.post(bans, json={"user_id": admin.id}, headers=moderator.headers)).status_code == 403
    assert (await client.post(bans, json={"user_id": owner.id}, headers=admin.headers)).status_code == 403
    assert (await client.post(bans, json={"user_id": moderator.id}, headers=member.headers)).status_code == 403
    removal = await client.delete(f"/v1/clubs/{club['id']}/members/{admin.id}", headers=moderator.headers)
    assert removal.status_code == 403
    assert (await client.delete(f"/v1/clubs/{club['id']}/members/{owner.id}", headers=admin.headers)).status_code == 403
    assert await stored_count(db, club["id"]) == (5, 5)
    # A moderator can remove and ban plain members.
    assert (
        await client.delete(f"/v1/clubs/{club['id']}/members/{member2.id}", headers=moderator.headers)
    ).status_code == 204
    banned = await client.post(bans, json={"user_id": member.id}, headers=moderator.headers)
    assert banned.status_code == 200
    assert banned.json() == {"user_id": member.id, "role": "member", "status": "banned"}
    assert await stored_count(db, club["id"]) == (3, 3)
    # Banned: cannot rejoin, cannot see private content, cannot leave to shed the ban.
    rejoin = await client.post(f"/v1/clubs/{club['id']}/join", json={}, headers=member.headers)
    assert rejoin.status_code == 403
    assert rejoin.json()["code"] == "banned"
    assert (await client.get(f"/v1/clubs/{club['id']}/members", headers=member.headers)).status_code == 403
    assert (await client.delete(f"/v1/clubs/{club['id']}/membership", headers=member.headers)).status_code == 403
    # Pre-emptive ban of a non-member, and unknown users.
    outsider = await make_account()
    assert (await client.post(bans, json={"user_id": outsider.id}, headers=admin.headers)).status_code == 200
    assert (await client.post(f"/v1/clubs/{club['id']}/join", json={}, headers=outsider.headers)).status_code == 403
    unknown = ids.encode(ids.Prefix.USER, uuid.uuid4())
    assert (await client.post(bans, json={"user_id": unknown}, headers=admin.headers)).status_code == 404
    assert (await client.post(bans, json={"user_id": "nope"}, headers=admin.headers)).status_code == 422
    # Unban lets them ask again.
    assert (await client.delete(f"{bans}/{member.id}", headers=admin.headers)).status_code == 204
    assert (await client.delete(f"{bans}/{member.id}", headers=admin.headers)).status_code == 404
    assert await join(client, club["id"], member) == "pending"
    assert await stored_count(db, club["id"]) == (3, 3)


async def test_invitation_by_email_is_mailed_and_accepted_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    wait_for_mail: WaitForMail,
    db: async_sessionmaker[AsyncSession],
) -> None:
    owner, member, invitee, someone_else = [await make_account() for _ in range(4)]
    club = await create_club(client, owner, privacy_level="secret", name=f"Secret Supper {uuid.uuid4().hex[:6]}")
    await add_member(client, club, owner, member)
    refused = await client.post(
        f"/v1/clubs/{club['id']}/invitations", json={"email": invitee.email}, headers=member.headers
    )
    assert refused.status_code == 403
    sent = await client.post(
        f"/v1/clubs/{club['id']}/invitations", json={"email": invitee.email.upper()}, headers=owner.headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["email"] == invitee.email
    mail = await wait_for_mail(invitee.email, "invited to join")
    assert club["name"] in str(mail["Subject"])
    token = mailed_token(mail, "ci")
    wrong_person = await client.post(
        "/v1/clubs/invitations/accept", json={"token": token}, headers=someone_else.headers
    )
    assert wrong_person.status_code == 403
    assert wrong_person.json()["code"] == "invitation_email_mismatch"
    accepted = await client.post("/v1/clubs/invitations/accept", json={"token": token}, headers=invitee.headers)
    assert accepted.status_code == 200
    assert accepted.json() == {"status": "approved", "club_id": club["id"]}
    reused = await client.post("/v1/clubs/invitations/accept", json={"token": token}, headers=invitee.headers)
    assert reused.status_code == 422
    assert reused.json()["code"] == "invalid_token"
    assert (await client.get(f"/v1/clubs/{club['id']}", headers=invitee.headers)).json()["membership"][
        "status"
    ] == "active"
    assert await stored_count(db, club["id"]) == (3, 3)
    again = await client.post(
        f"/v1/clubs/{club['id']}/invitations", json={"email": invitee.email}, headers=owner.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_member"
    for bad in ({"email": "not-an-email"}, {"email": unique_email(), "role": "admin"}, {}):
        invalid = await client.post(f"/v1/clubs/{club['id']}/invitations", json=bad, headers=owner.headers)
        assert invalid.status_code == 422, bad
    garbage = await client.post(
        "/v1/clubs/invitations/accept", json={"token": "ci_" + "x" * 40}, headers=invitee.headers
    )
    assert garbage.status_code == 422
    # Non-members of a secret club cannot even learn it exists.
    outsider = await client.post(
        f"/v1/clubs/{club['id']}/invitations", json={"email": unique_email()}, headers=someone_else.headers
    )
    assert outsider.status_code == 404


async def test_expired_invitation_is_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    wait_for_mail: WaitForMail,
    db: async_sessionmaker[AsyncSession],
) -> None:
    owner, invitee = await make_account(), await make_account()
    club = await create_club(client, owner, privacy_level="secret")
    sent = await client.post(
        f"/v1/clubs/{club['id']}/invitations", json={"email": invitee.email}, headers=owner.headers
    )
    assert sent.status_code == 201
    token = mailed_token(await wait_for_mail(invitee.email, "invited to join"), "ci")

    async with db.begin() as session:
        await session.execute(
            update(ClubInvitation)
            .where(ClubInvitation.club_id == ids.decode(ids.Prefix.CLUB, club["id"]))
            .values(expires_at=ClubInvitation.created_at)
        )
    expired = await client.post("/v1/clubs/invitations/accept", json={"token": token}, headers=invitee.headers)
    assert expired.status_code == 422
    assert await memberships(db, club["id"]) == 1


async def test_invite_link_use_limit_holds_under_concurrency(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner = await make_account()
    club = await create_club(client, owner, privacy_level="secret")
    link = await client.post(
        f"/v1/clubs/{club['id']}/invite-links", json={"expires_in_hours": 24, "max_uses": 3}, headers=owner.headers
    )
    assert link.status_code == 201
    body = link.json()
    assert set(body) == {"code", "url", "expires_at", "max_uses"}
    assert body["url"].endswith(f"/join/{body['code']}")
    users = [await make_account() for _ in range(10)]
    responses = await asyncio.gather(
        *(client.post("/v1/clubs/join-by-link", json={"code": body["code"]}, headers=u.headers) for u in users)
    )
    assert sorted(r.status_code for r in responses) == [200] * 3 + [409] * 7
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"invite_exhausted"}
    assert await stored_count(db, club["id"]) == (4, 4)
    assert await memberships(db, club["id"]) == 4
    async with db() as session:
        uses = await session.scalar(
            select(ClubInviteLink.use_count).where(ClubInviteLink.club_id == ids.decode(ids.Prefix.CLUB, club["id"]))
        )
    assert uses == 3
    # A member using the link again spends nothing and stays a member.
    winner = next(u for u, r in zip(users, responses, strict=True) if r.status_code == 200)
    again = await client.post("/v1/clubs/join-by-link", json={"code": body["code"]}, headers=winner.headers)
    assert again.status_code == 200
    assert again.json() == {"status": "approved", "club_id": club["id"]}


async def test_invite_link_rules(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, moderator, user, banned = [await make_account() for _ in range(4)]
    club = await create_club(client, owner, privacy_level="private")
    await add_member(client, club, owner, moderator, "moderator")
    await ban(client, club, owner, banned)
    path = f"/v1/clubs/{club['id']}/invite-links"
    assert (await client.post(path, json={}, headers=moderator.headers)).status_code == 403
    for bad in ({"max_uses": 0}, {"expires_in_hours": 0}, {"expires_in_hours": 10_000}, {"uses": 3}):
        assert (await client.post(path, json=bad, headers=owner.headers)).status_code == 422, bad
    code = (await client.post(path, json={"max_uses": 5}, headers=owner.headers)).json()["code"]
    refused = await client.post("/v1/clubs/join-by-link", json={"code": code}, headers=banned.headers)
    assert refused.status_code == 403
    unknown = await client.post("/v1/clubs/join-by-link", json={"code": "not-a-code"}, headers=user.headers)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "invite_not_found"
    async with db.begin() as session:
        await session.execute(
            update(ClubInviteLink)
            .where(ClubInviteLink.club_id == ids.decode(ids.Prefix.CLUB, club["id"]))
            .values(expires_at=ClubInviteLink.created_at)
        )
    expired = await client.post("/v1/clubs/join-by-link", json={"code": code}, headers=user.headers)
    assert expired.status_code == 409
    assert expired.json()["code"] == "invite_expired"
    assert await stored_count(db, club["id"]) == (2, 2)


async def test_circle_owner_adds_members_directly(
    client: httpx.AsyncClient, make_account: MakeAccount, db: async_sessionmaker[AsyncSession]
) -> None:
    owner, friend, member, outsider = [await make_account() for _ in range(4)]
    circle = await create_club(client, owner, kind="circle", privacy_level="secret")
    path = f"/v1/clubs/{circle['id']}/members"
    added = await client.post(path, json={"user_id": friend.id}, headers=owner.headers)
    assert added.status_code == 200, added.text
    assert added.json() == {"user_id": friend.id, "role": "member", "status": "active"}
    assert (await client.post(path, json={"user_id": friend.id}, headers=owner.headers)).status_code == 200
    assert await stored_count(db, circle["id"]) == (2, 2)
    assert (await client.post(path, json={"user_id": member.id}, headers=friend.headers)).status_code == 403
    assert (await client.post(path, json={"user_id": member.id}, headers=outsider.headers)).status_code == 404
    unknown = ids.encode(ids.Prefix.USER, uuid.uuid4())
    assert (await client.post(path, json={"user_id": unknown}, headers=owner.headers)).status_code == 404
    assert (await client.post(path, json={"user_id": "usr_1"}, headers=owner.headers)).status_code == 422
    assert (await client.post(f"/v1/clubs/{circle['id']}/join", json={}, headers=outsider.headers)).status_code == 404
    club = await create_club(client, owner)
    not_circle = await client.post(
        f"/v1/clubs/{club['id']}/members", json={"user_id": friend.id}, headers=owner.headers
    )
    assert not_circle.status_code == 409
    assert not_circle.json()["code"] == "not_a_circle"
    assert await memberships(db, club["id"]) == 1
    joined = await outbox_events(db, "club.member_joined", club_id=uuid_of(ids.Prefix.CLUB, circle["id"]))
    assert [e["user_id"] for e in joined] == [uuid_of(ids.Prefix.USER, friend.id)]


async def test_member_directory_filters_and_pages(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    owner = await make_account(display_name="Olivia Owner")
    club = await create_club(client, owner)
    people = [await make_account(display_name=f"Hiker {i}") for i in range(4)]
    for person in people:
        await add_member(client, club, owner, person)
    await client.patch(
        f"/v1/clubs/{club['id']}/members/{people[2].id}", json={"role": "moderator"}, headers=owner.headers
    )
    path = f"/v1/clubs/{club['id']}/members"
    first = (await client.get(path, params={"limit": 3}, headers=people[0].headers)).json()
    second = (
        await client.get(path, params={"limit": 3, "cursor": first["next_cursor"]}, headers=people[0].headers)
    ).json()
    assert [m["user"]["id"] for m in first["items"] + second["items"]] == [owner.id] + [p.id for p in people]
    assert second["next_cursor"] is None
    assert first["items"][0] == {
        "user": {"id": owner.id, "display_name": "Olivia Owner", "avatar_url": None},
        "role": "owner",
        "joined_at": first["items"][0]["joined_at"],
    }
    hikers = (await client.get(path, params={"q": "hiker"}, headers=owner.headers)).json()
    assert len(hikers["items"]) == 4
    mods = (await client.get(path, params={"role": "moderator"}, headers=owner.headers)).json()
    assert [m["user"]["id"] for m in mods["items"]] == [people[2].id]
    assert (await client.get(path, params={"role": "boss"}, headers=owner.headers)).status_code == 422
