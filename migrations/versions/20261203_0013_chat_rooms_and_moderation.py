"""chat rooms (event and club chats) and chat moderation

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-03 08:45:00

Event and club chats get ``event_id``/``club_id`` and a ``read_only`` flag; existing clubs and
published events get their room, filled with their active members / confirmed attendees.
Moderation adds blocklist terms, message cases and an append-only audit log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_chats_type"), "chats", type_="check")
    op.create_check_constraint(op.f("ck_chats_type"), "chats", "type IN ('direct', 'group', 'event', 'club')")
    op.add_column("chats", sa.Column("event_id", sa.Uuid(), nullable=True))
    op.add_column("chats", sa.Column("club_id", sa.Uuid(), nullable=True))
    op.add_column("chats", sa.Column("read_only", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_foreign_key(op.f("fk_chats_event_id_events"), "chats", "events", ["event_id"], ["id"], ondelete="CASCADE")
    op.create_foreign_key(op.f("fk_chats_club_id_clubs"), "chats", "clubs", ["club_id"], ["id"], ondelete="CASCADE")
    op.create_unique_constraint(op.f("uq_chats_event_id"), "chats", ["event_id"])
    op.create_unique_constraint(op.f("uq_chats_club_id"), "chats", ["club_id"])
    op.create_check_constraint(op.f("ck_chats_event_room"), "chats", "(type = 'event') = (event_id IS NOT NULL)")
    op.create_check_constraint(op.f("ck_chats_club_room"), "chats", "(type = 'club') = (club_id IS NOT NULL)")

    op.create_table(
        "blocklist_terms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=True),
        sa.Column("term", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("mode IN ('reject', 'flag')", name=op.f("ck_blocklist_terms_mode")),
        sa.CheckConstraint("length(term) > 0 AND term = lower(term)", name=op.f("ck_blocklist_terms_term_normalized")),
        sa.ForeignKeyConstraint(
            ["club_id"], ["clubs.id"], name=op.f("fk_blocklist_terms_club_id_clubs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_blocklist_terms_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklist_terms")),
    )
    op.create_index(
        "uq_blocklist_terms_global_term",
        "blocklist_terms",
        ["term"],
        unique=True,
        postgresql_where=sa.text("club_id IS NULL"),
    )
    op.create_index(
        "uq_blocklist_terms_club_term",
        "blocklist_terms",
        ["club_id", "term"],
        unique=True,
        postgresql_where=sa.text("club_id IS NOT NULL"),
    )

    op.create_table(
        "moderation_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_moderation_cases_status")),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('approve', 'remove', 'dismiss')",
            name=op.f("ck_moderation_cases_resolution"),
        ),
        sa.CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name=op.f("ck_moderation_cases_resolved")),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_moderation_cases_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_moderation_cases_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["users.id"], name=op.f("fk_moderation_cases_reporter_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["users.id"], name=op.f("fk_moderation_cases_resolved_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_cases")),
    )
    op.create_index(
        "uq_moderation_cases_open_report",
        "moderation_cases",
        ["message_id", "reporter_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_moderation_cases_open", "moderation_cases", ["id"], postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_moderation_cases_message_id", "moderation_cases", ["message_id"])

    op.create_table(
        "moderation_audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("chat_id", sa.Uuid(), nullable=True),
        sa.Column("club_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IN ('case.approve', 'case.remove', 'case.dismiss', 'message.remove', 'blocklist.add', "
            "'blocklist.delete')",
            name=op.f("ck_moderation_audit_log_action"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_audit_log")),
    )
    op.create_index("ix_moderation_audit_log_target_id", "moderation_audit_log", ["target_id"])
    op.execute(
        """
        CREATE FUNCTION moderation_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'moderation_audit_log is append-only';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER moderation_audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON moderation_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION moderation_audit_log_append_only()"
    )

    # Backfill: every live club and every published event gets its room, with the members it would
    # have had if rooms had always existed (owner/organizer as the room admin).
    op.execute(
        """
        INSERT INTO chats (id, type, title, created_by, club_id)
        SELECT gen_random_uuid(), 'club', left(c.name, 120), c.owner_id, c.id
        FROM clubs c
        WHERE c.deleted_at IS NULL
        ON CONFLICT (club_id) DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO chat_participants (chat_id, user_id, role)
        SELECT ch.id, m.user_id, CASE WHEN m.role = 'owner' THEN 'admin' ELSE 'member' END
        FROM chats ch JOIN club_memberships m ON m.club_id = ch.club_id AND m.status = 'active'
        WHERE ch.type = 'club'
        ON CONFLICT DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO chats (id, type, title, created_by, event_id)
        SELECT gen_random_uuid(), 'event', left(e.title, 120), e.organizer_id, e.id
        FROM events e
        WHERE e.status = 'published'
        ON CONFLICT (event_id) DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO chat_participants (chat_id, user_id, role)
        SELECT ch.id, e.organizer_id, 'admin'
        FROM chats ch JOIN events e ON e.id = ch.event_id
        WHERE ch.type = 'event'
        UNION
        SELECT ch.id, r.user_id, 'member'
        FROM chats ch JOIN event_rsvps r ON r.event_id = ch.event_id AND r.status = 'confirmed'
        JOIN events e ON e.id = ch.event_id
        WHERE ch.type = 'event' AND r.user_id <> e.organizer_id
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER moderation_audit_log_append_only ON moderation_audit_log")
    op.execute("DROP FUNCTION moderation_audit_log_append_only()")
    op.drop_index("ix_moderation_audit_log_target_id", table_name="moderation_audit_log")
    op.drop_table("moderation_audit_log")
    op.drop_index("ix_moderation_cases_message_id", table_name="moderation_cases")
    op.drop_index(
        "ix_moderation_cases_open", table_name="moderation_cases", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_index(
        "uq_moderation_cases_open_report", table_name="moderation_cases", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_table("moderation_cases")
    op.drop_index(
        "uq_blocklist_terms_club_term", table_name="blocklist_terms", postgresql_where=sa.text("club_id IS NOT NULL")
    )
    op.drop_index(
        "uq_blocklist_terms_global_term", table_name="blocklist_terms", postgresql_where=sa.text("club_id IS NULL")
    )
    op.drop_table("blocklist_terms")
    # Managed rooms cannot exist under the old schema.
    op.execute("DELETE FROM chats WHERE type IN ('event', 'club')")
    op.drop_constraint(op.f("ck_chats_club_room"), "chats", type_="check")
    op.drop_constraint(op.f("ck_chats_event_room"), "chats", type_="check")
    op.drop_constraint(op.f("uq_chats_club_id"), "chats", type_="unique")
    op.drop_constraint(op.f("uq_chats_event_id"), "chats", type_="unique")
    op.drop_constraint(op.f("fk_chats_club_id_clubs"), "chats", type_="foreignkey")
    op.drop_constraint(op.f("fk_chats_event_id_events"), "chats", type_="foreignkey")
    op.drop_column("chats", "read_only")
    op.drop_column("chats", "club_id")
    op.drop_column("chats", "event_id")
    op.drop_constraint(op.f("ck_chats_type"), "chats", type_="check")
    op.create_check_constraint(op.f("ck_chats_type"), "chats", "type IN ('direct', 'group')")
