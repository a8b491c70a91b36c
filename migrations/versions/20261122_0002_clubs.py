"""clubs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:45:38.050266
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clubs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=30)), server_default="{}", nullable=False),
        sa.Column("privacy_level", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("avatar_url", sa.String(length=1024), nullable=True),
        sa.Column("cover_url", sa.String(length=1024), nullable=True),
        sa.Column("join_approval", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("who_can_post", sa.String(length=16), server_default="members", nullable=False),
        sa.Column("member_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind <> 'circle' OR privacy_level = 'secret'", name=op.f("ck_clubs_circle_is_secret")),
        sa.CheckConstraint("kind IN ('club', 'community', 'circle')", name=op.f("ck_clubs_kind")),
        sa.CheckConstraint("privacy_level IN ('public', 'private', 'secret')", name=op.f("ck_clubs_privacy_level")),
        sa.CheckConstraint("who_can_post IN ('members', 'moderators')", name=op.f("ck_clubs_who_can_post")),
        sa.CheckConstraint("member_count >= 0", name=op.f("ck_clubs_member_count_non_negative")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_clubs_owner_id_users"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clubs")),
        sa.UniqueConstraint("slug", name=op.f("uq_clubs_slug")),
    )
    op.create_index("ix_clubs_city", "clubs", [sa.literal_column("lower(city)")], unique=False)
    op.create_index(op.f("ix_clubs_owner_id"), "clubs", ["owner_id"], unique=False)
    op.create_index("ix_clubs_tags", "clubs", ["tags"], unique=False, postgresql_using="gin")
    op.create_table(
        "club_invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["accepted_by"], ["users.id"], name=op.f("fk_club_invitations_accepted_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["club_id"], ["clubs.id"], name=op.f("fk_club_invitations_club_id_clubs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["users.id"], name=op.f("fk_club_invitations_invited_by_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_club_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_club_invitations_token_hash")),
    )
    op.create_index(op.f("ix_club_invitations_club_id"), "club_invitations", ["club_id"], unique=False)
    op.create_table(
        "club_invite_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("use_count", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "max_uses IS NULL OR (max_uses > 0 AND use_count <= max_uses)", name=op.f("ck_club_invite_links_use_limit")
        ),
        sa.CheckConstraint("use_count >= 0", name=op.f("ck_club_invite_links_use_count_non_negative")),
        sa.ForeignKeyConstraint(
            ["club_id"], ["clubs.id"], name=op.f("fk_club_invite_links_club_id_clubs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_club_invite_links_created_by_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_club_invite_links")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_club_invite_links_code_hash")),
    )
    op.create_index(op.f("ix_club_invite_links_club_id"), "club_invite_links", ["club_id"], unique=False)
    op.create_table(
        "club_memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="member", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role <> 'owner' OR status = 'active'", name=op.f("ck_club_memberships_owner_is_active")),
        sa.CheckConstraint("role IN ('owner', 'admin', 'moderator', 'member')", name=op.f("ck_club_memberships_role")),
        sa.CheckConstraint("status IN ('pending', 'active', 'banned')", name=op.f("ck_club_memberships_status")),
        sa.ForeignKeyConstraint(
            ["club_id"], ["clubs.id"], name=op.f("fk_club_memberships_club_id_clubs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_club_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_club_memberships")),
        sa.UniqueConstraint("club_id", "user_id", name=op.f("uq_club_memberships_club_id_user_id")),
    )
    op.create_index("ix_club_memberships_user_id_status", "club_memberships", ["user_id", "status"], unique=False)
    op.create_index(
        "uq_club_memberships_one_owner",
        "club_memberships",
        ["club_id"],
        unique=True,
        postgresql_where=sa.text("role = 'owner'"),
    )
    op.create_table(
        "club_spaces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("who_can_post", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('discussion', 'events', 'chat', 'resources')", name=op.f("ck_club_spaces_kind")),
        sa.CheckConstraint("who_can_post IN ('members', 'moderators')", name=op.f("ck_club_spaces_who_can_post")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_club_spaces_position_non_negative")),
        sa.ForeignKeyConstraint(
            ["club_id"], ["clubs.id"], name=op.f("fk_club_spaces_club_id_clubs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_club_spaces")),
        sa.UniqueConstraint("club_id", "name", name=op.f("uq_club_spaces_club_id_name")),
        sa.UniqueConstraint(
            "club_id", "position", deferrable=True, initially="DEFERRED", name=op.f("uq_club_spaces_club_id_position")
        ),
    )


def downgrade() -> None:
    op.drop_table("club_spaces")
    op.drop_index(
        "uq_club_memberships_one_owner", table_name="club_memberships", postgresql_where=sa.text("role = 'owner'")
    )
    op.drop_index("ix_club_memberships_user_id_status", table_name="club_memberships")
    op.drop_table("club_memberships")
    op.drop_index(op.f("ix_club_invite_links_club_id"), table_name="club_invite_links")
    op.drop_table("club_invite_links")
    op.drop_index(op.f("ix_club_invitations_club_id"), table_name="club_invitations")
    op.drop_table("club_invitations")
    op.drop_index("ix_clubs_tags", table_name="clubs", postgresql_using="gin")
    op.drop_index(op.f("ix_clubs_owner_id"), table_name="clubs")
    op.drop_index("ix_clubs_city", table_name="clubs")
    op.drop_table("clubs")
