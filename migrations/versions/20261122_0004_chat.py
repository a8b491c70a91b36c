"""chat

Revision ID: 0004
Revises: 0007
Create Date: 2026-11-22 02:45:03.119804
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=True),
        sa.Column("direct_key", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(type = 'direct') = (direct_key IS NOT NULL)", name=op.f("ck_chats_direct_key")),
        sa.CheckConstraint("type IN ('direct', 'group')", name=op.f("ck_chats_type")),
        sa.CheckConstraint("last_seq >= 0", name=op.f("ck_chats_last_seq")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_chats_created_by_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
        sa.UniqueConstraint("direct_key", name=op.f("uq_chats_direct_key")),
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("client_message_id", sa.String(length=64), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reply_to_id", sa.Uuid(), nullable=True),
        sa.Column("mentions", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.Uuid(), nullable=True),
        sa.Column("moderation_status", sa.String(length=16), server_default="visible", nullable=False),
        sa.CheckConstraint(
            "moderation_status IN ('visible', 'flagged', 'removed')", name=op.f("ck_chat_messages_moderation_status")
        ),
        sa.CheckConstraint("(deleted_at IS NULL) = (content IS NOT NULL)", name=op.f("ck_chat_messages_tombstone")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_chat_messages_seq")),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_chat_messages_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["deleted_by"], ["users.id"], name=op.f("fk_chat_messages_deleted_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["reply_to_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_messages_reply_to_id_chat_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_chat_messages_sender_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint(
            "chat_id",
            "sender_id",
            "client_message_id",
            name=op.f("uq_chat_messages_chat_id_sender_id_client_message_id"),
        ),
        sa.UniqueConstraint("chat_id", "seq", name=op.f("uq_chat_messages_chat_id_seq")),
    )
    op.create_table(
        "chat_participants",
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="member", nullable=False),
        sa.Column("last_read_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("muted_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'member')", name=op.f("ck_chat_participants_role")),
        sa.CheckConstraint("last_read_seq >= 0", name=op.f("ck_chat_participants_last_read_seq")),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_chat_participants_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_participants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_chat_participants")),
    )
    op.create_index("ix_chat_participants_user_id", "chat_participants", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_chat_participants_user_id", table_name="chat_participants")
    op.drop_table("chat_participants")
    op.drop_table("chat_messages")
    op.drop_table("chats")
