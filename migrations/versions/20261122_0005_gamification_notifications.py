"""gamification and notifications: streaks, badges (catalog seeded), points, leaderboards, notifications

Revision ID: 0005
Revises: 0008
Create Date: 2026-11-22 03:00:43.464697
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BADGES = [
    ("first_post", "First Post", "Published your first post.", "posts", 1),
    ("first_event", "First Event", "Checked in to your first event.", "events_attended", 1),
    ("event_10", "Event Enthusiast", "Checked in to 10 events.", "events_attended", 10),
    ("clubs_5", "Club Hopper", "Joined 5 clubs.", "clubs_joined", 5),
    ("streak_7", "Week Streak", "Kept a 7-day streak.", "best_streak", 7),
    ("streak_30", "Month Streak", "Kept a 30-day streak.", "best_streak", 30),
    ("first_club", "Founder", "Created your first club.", "clubs_created", 1),
    ("messages_100", "Chatterbox", "Sent 100 messages.", "messages", 100),
]


def upgrade() -> None:
    op.create_table(
        "badges",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("counter", sa.String(length=40), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_badges")),
    )
    op.create_table(
        "counted_causes",
        sa.Column("cause", sa.String(length=120), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("cause", "purpose", name=op.f("pk_counted_causes")),
    )
    op.create_table(
        "activity_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("counter", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_activity_counters_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "counter", name=op.f("pk_activity_counters")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=10), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("platform IN ('ios', 'android', 'web')", name=op.f("ck_devices_platform")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("token", name=op.f("uq_devices_token")),
    )
    op.create_index(op.f("ix_devices_user_id"), "devices", ["user_id"], unique=False)
    op.create_table(
        "leaderboard_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("board", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_key", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("period IN ('week', 'month', 'all')", name=op.f("ck_leaderboard_snapshots_period")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_leaderboard_snapshots_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaderboard_snapshots")),
    )
    op.create_index(
        "uq_leaderboard_snapshots_board_user", "leaderboard_snapshots", ["board", "period_key", "user_id"], unique=True
    )
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("channel IN ('in_app', 'push', 'email')", name=op.f("ck_notification_preferences_channel")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "type", "channel", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("daily_digest", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("content_free_push", sa.Boolean(), server_default="false", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_settings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("collapse_key", sa.String(length=200), nullable=True),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_collapse",
        "notifications",
        ["user_id", "collapse_key"],
        unique=False,
        postgresql_where=sa.text("read_at IS NULL AND collapse_key IS NOT NULL"),
    )
    op.create_index(
        "ix_notifications_unread",
        "notifications",
        ["user_id", "id"],
        unique=False,
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"], unique=False)
    op.create_index("uq_notifications_user_id_dedupe_key", "notifications", ["user_id", "dedupe_key"], unique=True)
    op.create_table(
        "point_awards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("cause", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("awarded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_point_awards_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_awards")),
    )
    op.create_index("ix_point_awards_user_id", "point_awards", ["user_id"], unique=False)
    op.create_index("uq_point_awards_cause", "point_awards", ["cause"], unique=True)
    op.create_table(
        "streaks",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("longest", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('daily_checkin', 'rsvp', 'message', 'overall')", name=op.f("ck_streaks_kind")),
        sa.CheckConstraint("current >= 0 AND longest >= current", name=op.f("ck_streaks_counts")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_streaks_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_streaks")),
    )
    op.create_table(
        "user_badges",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("badge_code", sa.String(length=40), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["badge_code"], ["badges.code"], name=op.f("fk_user_badges_badge_code_badges"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_badges_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "badge_code", name=op.f("pk_user_badges")),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("channel IN ('in_app', 'push', 'email')", name=op.f("ck_notification_deliveries_channel")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'skipped', 'digest_pending')",
            name=op.f("ck_notification_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_deliveries_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        "ix_notification_deliveries_digest",
        "notification_deliveries",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("status = 'digest_pending'"),
    )
    op.create_index(
        "uq_notification_deliveries_notification_id_channel",
        "notification_deliveries",
        ["notification_id", "channel"],
        unique=True,
    )
    badges = sa.table(
        "badges",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("counter", sa.String),
        sa.column("threshold", sa.Integer),
    )
    op.bulk_insert(
        badges,
        [dict(zip(("code", "name", "description", "counter", "threshold"), row, strict=True)) for row in BADGES],
    )


def downgrade() -> None:
    op.drop_index("uq_notification_deliveries_notification_id_channel", table_name="notification_deliveries")
    op.drop_index(
        "ix_notification_deliveries_digest",
        table_name="notification_deliveries",
        postgresql_where=sa.text("status = 'digest_pending'"),
    )
    op.drop_table("notification_deliveries")
    op.drop_table("user_badges")
    op.drop_table("streaks")
    op.drop_index("uq_point_awards_cause", table_name="point_awards")
    op.drop_index("ix_point_awards_user_id", table_name="point_awards")
    op.drop_table("point_awards")
    op.drop_index("uq_notifications_user_id_dedupe_key", table_name="notifications")
    op.drop_index("ix_notifications_user_id_id", table_name="notifications")
    op.drop_index("ix_notifications_unread", table_name="notifications", postgresql_where=sa.text("read_at IS NULL"))
    op.drop_index(
        "ix_notifications_collapse",
        table_name="notifications",
        postgresql_where=sa.text("read_at IS NULL AND collapse_key IS NOT NULL"),
    )
    op.drop_table("notifications")
    op.drop_table("notification_settings")
    op.drop_table("notification_preferences")
    op.drop_index("uq_leaderboard_snapshots_board_user", table_name="leaderboard_snapshots")
    op.drop_table("leaderboard_snapshots")
    op.drop_index(op.f("ix_devices_user_id"), table_name="devices")
    op.drop_table("devices")
    op.drop_table("activity_counters")
    op.drop_table("counted_causes")
    op.drop_table("badges")
