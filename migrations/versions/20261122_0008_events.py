"""events, RSVPs and their history, check-in staff, calendar feeds, sent reminders

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-22 03:13:25.972988
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Radius search uses ll_to_earth/earth_box; both ship with PostgreSQL's contrib (embedded build too).
    op.execute("CREATE EXTENSION IF NOT EXISTS cube")
    op.execute("CREATE EXTENSION IF NOT EXISTS earthdistance")
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_calendar_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organizer_id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=True),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("title", sa.String(length=140), nullable=False),
        sa.Column("description", sa.String(length=5000), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("location_name", sa.String(length=200), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("address_visibility", sa.String(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("seats_taken", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_queue_seq", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=30)), server_default="{}", nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("skill_level", sa.String(length=30), nullable=True),
        sa.Column("requires_approval", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ticket_type", sa.String(length=8), nullable=False),
        sa.Column("price_cents", sa.Integer(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("address_visibility IN ('public', 'attendees')", name=op.f("ck_events_address_visibility")),
        sa.CheckConstraint("kind IN ('event', 'activity')", name=op.f("ck_events_kind")),
        sa.CheckConstraint("status IN ('draft', 'published', 'cancelled', 'completed')", name=op.f("ck_events_status")),
        sa.CheckConstraint("ticket_type IN ('free', 'paid')", name=op.f("ck_events_ticket_type")),
        sa.CheckConstraint(
            "visibility <> 'club' OR club_id IS NOT NULL", name=op.f("ck_events_club_visibility_needs_club")
        ),
        sa.CheckConstraint("visibility IN ('public', 'club', 'private')", name=op.f("ck_events_visibility")),
        sa.CheckConstraint("capacity IS NULL OR capacity > 0", name=op.f("ck_events_capacity_positive")),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_events_ends_after_start")),
        sa.CheckConstraint(
            "latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180", name=op.f("ck_events_coordinates")
        ),
        sa.CheckConstraint(
            "seats_taken >= 0 AND (capacity IS NULL OR seats_taken <= capacity)", name=op.f("ck_events_seats_within")
        ),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"], name=op.f("fk_events_club_id_clubs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["organizer_id"], ["users.id"], name=op.f("fk_events_organizer_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("slug", name=op.f("uq_events_slug")),
    )
    op.create_index("ix_events_city", "events", [sa.literal_column("lower(city)")], unique=False)
    op.create_index(op.f("ix_events_club_id"), "events", ["club_id"], unique=False)
    op.create_index(
        "ix_events_earth",
        "events",
        [sa.literal_column("ll_to_earth(latitude, longitude)")],
        unique=False,
        postgresql_using="gist",
    )
    op.create_index(op.f("ix_events_organizer_id"), "events", ["organizer_id"], unique=False)
    op.create_index(
        "ix_events_point",
        "events",
        [sa.literal_column("point(longitude, latitude)")],
        unique=False,
        postgresql_using="gist",
    )
    op.create_index("ix_events_status_start_time", "events", ["status", "start_time", "id"], unique=False)
    op.create_index("ix_events_tags", "events", ["tags"], unique=False, postgresql_using="gin")
    op.create_table(
        "event_reminders_sent",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('24h', '1h')", name=op.f("ck_event_reminders_sent_kind")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_reminders_sent_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_reminders_sent_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", "kind", "start_time", name=op.f("pk_event_reminders_sent")),
    )
    op.create_table(
        "event_rsvps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("guest_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("queue_seq", sa.BigInteger(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket_code", sa.String(length=64), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status <> 'waitlisted' OR queue_seq IS NOT NULL", name=op.f("ck_event_rsvps_waitlisted_has_seq")
        ),
        sa.CheckConstraint(
            "status = 'confirmed' OR ticket_code IS NULL", name=op.f("ck_event_rsvps_ticket_only_confirmed")
        ),
        sa.CheckConstraint(
            "status IN ('confirmed', 'waitlisted', 'pending_approval', 'maybe', 'cancelled', 'rejected')",
            name=op.f("ck_event_rsvps_status"),
        ),
        sa.CheckConstraint("guest_count BETWEEN 0 AND 5", name=op.f("ck_event_rsvps_guest_count")),
        sa.ForeignKeyConstraint(
            ["checked_in_by"], ["users.id"], name=op.f("fk_event_rsvps_checked_in_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_rsvps_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_rsvps_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_rsvps")),
        sa.UniqueConstraint("event_id", "queue_seq", name=op.f("uq_event_rsvps_event_id_queue_seq")),
        sa.UniqueConstraint("event_id", "user_id", name=op.f("uq_event_rsvps_event_id_user_id")),
        sa.UniqueConstraint("ticket_code", name=op.f("uq_event_rsvps_ticket_code")),
    )
    op.create_index("ix_event_rsvps_event_id_status", "event_rsvps", ["event_id", "status", "queue_seq"], unique=False)
    op.create_index("ix_event_rsvps_user_id_status", "event_rsvps", ["user_id", "status"], unique=False)
    op.create_table(
        "event_staff",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), server_default="checkin_staff", nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name=op.f("fk_event_staff_added_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_staff_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_staff_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", name=op.f("pk_event_staff")),
    )
    op.create_table(
        "event_rsvp_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rsvp_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("guest_count", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_event_rsvp_history_actor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_rsvp_history_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rsvp_id"], ["event_rsvps.id"], name=op.f("fk_event_rsvp_history_rsvp_id_event_rsvps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_rsvp_history_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_rsvp_history")),
    )
    op.create_index("ix_event_rsvp_history_event_id_id", "event_rsvp_history", ["event_id", "id"], unique=False)
    op.create_index(op.f("ix_event_rsvp_history_rsvp_id"), "event_rsvp_history", ["rsvp_id"], unique=False)


def downgrade() -> None:
    # The extensions stay: other features may rely on them and dropping them needs no migration.
    op.drop_index(op.f("ix_event_rsvp_history_rsvp_id"), table_name="event_rsvp_history")
    op.drop_index("ix_event_rsvp_history_event_id_id", table_name="event_rsvp_history")
    op.drop_table("event_rsvp_history")
    op.drop_table("event_staff")
    op.drop_index("ix_event_rsvps_user_id_status", table_name="event_rsvps")
    op.drop_index("ix_event_rsvps_event_id_status", table_name="event_rsvps")
    op.drop_table("event_rsvps")
    op.drop_table("event_reminders_sent")
    op.drop_index("ix_events_tags", table_name="events", postgresql_using="gin")
    op.drop_index("ix_events_status_start_time", table_name="events")
    op.drop_index("ix_events_point", table_name="events", postgresql_using="gist")
    op.drop_index(op.f("ix_events_organizer_id"), table_name="events")
    op.drop_index("ix_events_earth", table_name="events", postgresql_using="gist")
    op.drop_index(op.f("ix_events_club_id"), table_name="events")
    op.drop_index("ix_events_city", table_name="events")
    op.drop_table("events")
    op.drop_table("calendar_feeds")
