"""place media and moderation of places and curated lists

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PURPOSES = "purpose IN ('avatar', 'post', 'event', 'message', 'club')"
NEW_PURPOSES = "purpose IN ('avatar', 'post', 'event', 'message', 'club', 'place')"
OLD_ACTIONS = (
    "action IN ('case.approve', 'case.remove', 'case.dismiss', 'message.remove', 'blocklist.add', 'blocklist.delete')"
)
NEW_ACTIONS = (
    "action IN ('case.approve', 'case.remove', 'case.dismiss', 'message.remove', 'blocklist.add', "
    "'blocklist.delete', 'place.hide', 'place.remove', 'place.restore', 'list.hide', 'list.remove', "
    "'list.restore', 'content.dismiss')"
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_media_purpose"), "media", type_="check")
    op.create_check_constraint(op.f("ck_media_purpose"), "media", NEW_PURPOSES)
    op.drop_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", type_="check")
    op.create_check_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", NEW_ACTIONS)

    op.add_column("places", sa.Column("media_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False))
    for table in ("places", "curated_lists"):
        op.add_column(table, sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column(table, sa.Column("hidden_by", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_hidden_by_users"), table, "users", ["hidden_by"], ["id"], ondelete="SET NULL"
        )

    op.create_table(
        "discovery_moderation_cases",
        sa.Column("place_id", sa.Uuid(), nullable=True),
        sa.Column("list_id", sa.Uuid(), nullable=True),
        sa.Column("reporter_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "num_nonnulls(place_id, list_id) = 1", name=op.f("ck_discovery_moderation_cases_one_target")
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_discovery_moderation_cases_status")),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('hide', 'remove', 'dismiss')",
            name=op.f("ck_discovery_moderation_cases_resolution"),
        ),
        sa.CheckConstraint(
            "(status = 'open') = (resolved_at IS NULL)", name=op.f("ck_discovery_moderation_cases_resolved")
        ),
        sa.ForeignKeyConstraint(
            ["place_id"], ["places.id"], name=op.f("fk_discovery_moderation_cases_place_id_places"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["curated_lists.id"],
            name=op.f("fk_discovery_moderation_cases_list_id_curated_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_discovery_moderation_cases_reporter_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_discovery_moderation_cases_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_moderation_cases")),
    )
    op.create_index(
        "uq_discovery_moderation_cases_open_place",
        "discovery_moderation_cases",
        ["place_id", "reporter_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open' AND place_id IS NOT NULL"),
    )
    op.create_index(
        "uq_discovery_moderation_cases_open_list",
        "discovery_moderation_cases",
        ["list_id", "reporter_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open' AND list_id IS NOT NULL"),
    )
    op.create_index(
        "ix_discovery_moderation_cases_open",
        "discovery_moderation_cases",
        ["id"],
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_discovery_moderation_cases_open",
        table_name="discovery_moderation_cases",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index(
        "uq_discovery_moderation_cases_open_list",
        table_name="discovery_moderation_cases",
        postgresql_where=sa.text("status = 'open' AND list_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_discovery_moderation_cases_open_place",
        table_name="discovery_moderation_cases",
        postgresql_where=sa.text("status = 'open' AND place_id IS NOT NULL"),
    )
    op.drop_table("discovery_moderation_cases")
    for table in ("curated_lists", "places"):
        op.drop_constraint(op.f(f"fk_{table}_hidden_by_users"), table, type_="foreignkey")
        op.drop_column(table, "hidden_by")
        op.drop_column(table, "hidden_at")
    op.drop_column("places", "media_ids")
    # Rows written with the new values would violate the old checks; the audit log is append-only,
    # so a downgrade after place/list moderation needs those rows archived by hand first.
    op.drop_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", type_="check")
    op.create_check_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", OLD_ACTIONS)
    op.drop_constraint(op.f("ck_media_purpose"), "media", type_="check")
    op.create_check_constraint(op.f("ck_media_purpose"), "media", OLD_PURPOSES)
