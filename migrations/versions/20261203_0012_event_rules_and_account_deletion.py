"""events: auto_approve rules and required_tier; users: deleted status and deleted_at; clubs: image media ids

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the event gating columns, the deleted account state and the club image uploads."""
    op.add_column(
        "events",
        sa.Column(
            "auto_approve",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("events", sa.Column("required_tier", sa.String(length=20), nullable=True))
    op.create_check_constraint(
        op.f("ck_events_required_tier"), "events", "required_tier IS NULL OR required_tier IN ('plus', 'pro')"
    )
    op.create_check_constraint(
        op.f("ck_events_auto_approve_is_array"), "events", "jsonb_typeof(auto_approve) = 'array'"
    )
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_users_status"), "users", type_="check")
    op.create_check_constraint(
        op.f("ck_users_status"), "users", "status IN ('pending', 'active', 'suspended', 'deleted')"
    )
    op.create_check_constraint(
        op.f("ck_users_deleted_at_matches_status"), "users", "(status = 'deleted') = (deleted_at IS NOT NULL)"
    )
    op.add_column("clubs", sa.Column("avatar_media_id", sa.Uuid(), nullable=True))
    op.add_column("clubs", sa.Column("cover_media_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_clubs_avatar_media_id_media"), "clubs", "media", ["avatar_media_id"], ["id"], ondelete="SET NULL"
    )
    op.create_foreign_key(
        op.f("fk_clubs_cover_media_id_media"), "clubs", "media", ["cover_media_id"], ["id"], ondelete="SET NULL"
    )


def downgrade() -> None:
    """Drop them again (deleted accounts become suspended, which also keeps them out)."""
    op.drop_constraint(op.f("fk_clubs_cover_media_id_media"), "clubs", type_="foreignkey")
    op.drop_constraint(op.f("fk_clubs_avatar_media_id_media"), "clubs", type_="foreignkey")
    op.drop_column("clubs", "cover_media_id")
    op.drop_column("clubs", "avatar_media_id")
    op.drop_constraint(op.f("ck_users_deleted_at_matches_status"), "users", type_="check")
    op.execute("UPDATE users SET status = 'suspended' WHERE status = 'deleted'")
    op.drop_constraint(op.f("ck_users_status"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_status"), "users", "status IN ('pending', 'active', 'suspended')")
    op.drop_column("users", "deleted_at")
    op.drop_constraint(op.f("ck_events_auto_approve_is_array"), "events", type_="check")
    op.drop_constraint(op.f("ck_events_required_tier"), "events", type_="check")
    op.drop_column("events", "required_tier")
    op.drop_column("events", "auto_approve")
