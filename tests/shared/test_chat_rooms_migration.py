"""Migration 0013 backfills a room for every live club and published event, with the right members."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from shared.db.migrate import upgrade

# Whatever revision 0013 ends up chained after.
BEFORE_ROOMS = "0013-1"
ROOMS = "0013"


async def test_rooms_are_backfilled_for_existing_clubs_and_published_events(engine_env: dict[str, str]) -> None:
    server_url = engine_env["TRIBE_DATABASE_URL"]
    name = f"tribe_rooms_backfill_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = server_url.rsplit("/", 1)[0] + f"/{name}"
        # Alembic's env runs its own event loop, so it goes on a thread.
        await asyncio.to_thread(upgrade, url, BEFORE_ROOMS)
        db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            users = [uuid.uuid4() for _ in range(6)]
            owner, member, pending, organizer, confirmed, waitlisted = users
            await db.executemany(
                "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, 'x', 'U')",
                [(u, f"{u.hex}@example.test") for u in users],
            )
            club, deleted_club = uuid.uuid4(), uuid.uuid4()
            await db.executemany(
                "INSERT INTO clubs (id, kind, name, slug, privacy_level, owner_id, deleted_at) "
                "VALUES ($1, 'club', $2, $3, 'public', $4, $5)",
                [
                    (club, "Runners", f"runners-{club.hex[:6]}", owner, None),
                    (deleted_club, "Gone", f"gone-{club.hex[:6]}", owner, None),
                ],
            )
            await db.execute("UPDATE clubs SET deleted_at = now() WHERE id = $1", deleted_club)
            await db.executemany(
                "INSERT INTO club_memberships (id, club_id, user_id, role, status) VALUES ($1, $2, $3, $4, $5)",
                [
                    (uuid.uuid4(), club, owner, "owner", "active"),
                    (uuid.uuid4(), club, member, "member", "active"),
                    (uuid.uuid4(), club, pending, "member", "pending"),
                    (uuid.uuid4(), deleted_club, owner, "owner", "active"),
                ],
            )
            published, draft = uuid.uuid4(), uuid.uuid4()
            await db.executemany(
                """
                INSERT INTO events (id, organizer_id, slug, title, start_time, end_time, timezone, location_name,
                                    latitude, longitude, address_visibility, visibility, kind, ticket_type,
                                    currency, status, capacity, seats_taken)
                VALUES ($1, $2, $3, $4, now() + interval '1 day', now() + interval '2 days', 'UTC', 'Park',
                        30, -97, 'public', 'public', 'event', 'free', 'USD', $5, 10, $6)
                """,
                [
                    (published, organizer, f"p-{published.hex}", "Sunset Hike", "published", 1),
                    (draft, organizer, f"d-{draft.hex}", "Draft", "draft", 0),
                ],
            )
            await db.executemany(
                "INSERT INTO event_rsvps (id, event_id, user_id, status, queue_seq) VALUES ($1, $2, $3, $4, $5)",
                [
                    (uuid.uuid4(), published, confirmed, "confirmed", None),
                    (uuid.uuid4(), published, waitlisted, "waitlisted", 1),
                ],
            )
        finally:
            await db.close()

        await asyncio.to_thread(upgrade, url, ROOMS)

        db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            rooms = {
                (r["club_id"] or r["event_id"]): r
                for r in await db.fetch("SELECT id, type, title, club_id, event_id, read_only, created_by FROM chats")
            }
            assert set(rooms) == {club, published}
            assert rooms[club]["type"] == "club"
            assert rooms[club]["title"] == "Runners"
            assert rooms[published]["type"] == "event"
            assert rooms[published]["created_by"] == organizer
            assert not rooms[club]["read_only"]

            async def members(chat_id: uuid.UUID) -> dict[uuid.UUID, str]:
                rows = await db.fetch("SELECT user_id, role FROM chat_participants WHERE chat_id = $1", chat_id)
                return {r["user_id"]: r["role"] for r in rows}

            assert await members(rooms[club]["id"]) == {owner: "admin", member: "member"}
            assert await members(rooms[published]["id"]) == {organizer: "admin", confirmed: "member"}
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
