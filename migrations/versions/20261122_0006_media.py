"""media: uploads, moderation cases and the append-only moderation audit log

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-22 03:05:25.925148
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("moderator_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("previous_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("action IN ('approve', 'reject')", name=op.f("ck_media_audit_log_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_audit_log")),
    )
    op.create_index(op.f("ix_media_audit_log_media_id"), "media_audit_log", ["media_id"], unique=False)
    # The audit log is append-only: the database refuses to change or remove a row.
    op.execute(
        """
        CREATE FUNCTION media_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'media_audit_log is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER media_audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON media_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION media_audit_log_append_only()"
    )
    op.create_table(
        "media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("declared_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("object_key", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("requires_review", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("preview_status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("variants", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("attached_to_kind", sa.String(length=16), nullable=True),
        sa.Column("attached_to_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "preview_status IN ('pending', 'ready', 'unavailable', 'not_applicable')",
            name=op.f("ck_media_preview_status"),
        ),
        sa.CheckConstraint("purpose IN ('avatar', 'post', 'event', 'message', 'club')", name=op.f("ck_media_purpose")),
        sa.CheckConstraint(
            "purpose NOT IN ('event', 'club') OR target_id IS NOT NULL", name=op.f("ck_media_target_required")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'pending_review', 'ready', 'rejected', 'failed', 'deleted')",
            name=op.f("ck_media_status"),
        ),
        sa.CheckConstraint("type IN ('photo', 'video', 'audio', 'document')", name=op.f("ck_media_type")),
        sa.CheckConstraint(
            "(attached_to_id IS NULL) = (attached_to_kind IS NULL)", name=op.f("ck_media_attachment_pair")
        ),
        sa.CheckConstraint("declared_size_bytes > 0", name=op.f("ck_media_declared_size_positive")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_media_owner_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("object_key", name=op.f("uq_media_object_key")),
    )
    op.create_index("ix_media_owner_id", "media", ["owner_id", "id"], unique=False)
    op.create_index(
        "ix_media_pending_created",
        "media",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_media_review_queue", "media", ["id"], unique=False, postgresql_where=sa.text("status = 'pending_review'")
    )
    op.create_table(
        "media_moderation_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_media_moderation_cases_status")),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name=op.f("fk_media_moderation_cases_media_id_media"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["users.id"], name=op.f("fk_media_moderation_cases_reporter_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_moderation_cases")),
        sa.UniqueConstraint("media_id", "reporter_id", name=op.f("uq_media_moderation_cases_media_id_reporter_id")),
    )
    op.create_index(
        "ix_media_moderation_cases_open",
        "media_moderation_cases",
        ["media_id"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_media_moderation_cases_open",
        table_name="media_moderation_cases",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_table("media_moderation_cases")
    op.drop_index("ix_media_review_queue", table_name="media", postgresql_where=sa.text("status = 'pending_review'"))
    op.drop_index("ix_media_pending_created", table_name="media", postgresql_where=sa.text("status = 'pending'"))
    op.drop_index("ix_media_owner_id", table_name="media")
    op.drop_table("media")
    op.drop_index(op.f("ix_media_audit_log_media_id"), table_name="media_audit_log")
    op.execute("DROP TRIGGER media_audit_log_append_only ON media_audit_log")
    op.drop_table("media_audit_log")
    op.execute("DROP FUNCTION media_audit_log_append_only()")
