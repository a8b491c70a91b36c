"""posts, comments, reactions and search indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:09:47.674949
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigram matching for typo-tolerant name search; the embedded PostgreSQL ships it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "posts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("club_id", sa.Uuid(), nullable=True),
        sa.Column("space_id", sa.Uuid(), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=True),
        sa.Column("content", sa.String(length=5000), nullable=False),
        sa.Column("media_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=30)), server_default="{}", nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("visibility IN ('public', 'followers', 'subscribers')", name=op.f("ck_posts_visibility")),
        sa.CheckConstraint("(club_id IS NULL) = (visibility IS NOT NULL)", name=op.f("ck_posts_club_or_visibility")),
        sa.CheckConstraint("char_length(content) <= 5000", name=op.f("ck_posts_content_length")),
        sa.CheckConstraint("space_id IS NULL OR club_id IS NOT NULL", name=op.f("ck_posts_space_needs_club")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_posts_author_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"], name=op.f("fk_posts_club_id_clubs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["deleted_by"], ["users.id"], name=op.f("fk_posts_deleted_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["club_spaces.id"], name=op.f("fk_posts_space_id_club_spaces"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
    )
    op.create_index(
        "ix_posts_profile_created",
        "posts",
        ["author_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL AND club_id IS NULL"),
    )
    op.create_index(
        "ix_posts_club_created",
        "posts",
        ["club_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_posts_search",
        "posts",
        [sa.literal_column("to_tsvector('simple'::regconfig, content)")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("depth", sa.SmallInteger(), nullable=False),
        sa.Column("content", sa.String(length=2000), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(parent_id IS NULL) = (depth = 0)", name=op.f("ck_comments_depth_matches_parent")),
        sa.CheckConstraint("char_length(content) <= 2000", name=op.f("ck_comments_content_length")),
        sa.CheckConstraint("depth >= 0 AND depth <= 2", name=op.f("ck_comments_depth")),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_comments_author_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id", "post_id"],
            ["comments.id", "comments.post_id"],
            name="fk_comments_parent_id_comments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_comments_post_id_posts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
        sa.UniqueConstraint("id", "post_id", name="uq_comments_id_post_id"),
    )
    op.create_index("ix_comments_post_parent", "comments", ["post_id", "parent_id", "id"], unique=False)
    op.create_table(
        "post_reactions",
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('like', 'love', 'haha', 'wow', 'sad', 'fire')", name=op.f("ck_post_reactions_kind")
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_reactions_post_id_posts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_post_reactions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", "user_id", "kind", name="pk_post_reactions"),
    )
    op.create_index("ix_post_reactions_post_kind", "post_reactions", ["post_id", "kind"], unique=False)
    op.create_table(
        "comment_reactions",
        sa.Column("comment_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('like', 'love', 'haha', 'wow', 'sad', 'fire')", name=op.f("ck_comment_reactions_kind")
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name=op.f("fk_comment_reactions_comment_id_comments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_comment_reactions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("comment_id", "user_id", "kind", name="pk_comment_reactions"),
    )
    op.create_index("ix_comment_reactions_comment_kind", "comment_reactions", ["comment_id", "kind"], unique=False)
    op.create_index(
        "ix_clubs_name_trgm",
        "clubs",
        ["name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_clubs_search",
        "clubs",
        [sa.literal_column("to_tsvector('simple'::regconfig, (name || ' ') || coalesce(description, ''))")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_users_display_name_trgm",
        "users",
        ["display_name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"display_name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_users_search",
        "users",
        [sa.literal_column("to_tsvector('simple'::regconfig, (display_name || ' ') || coalesce(bio, ''))")],
        unique=False,
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_users_search", table_name="users", postgresql_using="gin")
    op.drop_index(
        "ix_users_display_name_trgm",
        table_name="users",
        postgresql_using="gin",
        postgresql_ops={"display_name": "gin_trgm_ops"},
    )
    op.drop_index("ix_clubs_search", table_name="clubs", postgresql_using="gin")
    op.drop_index(
        "ix_clubs_name_trgm", table_name="clubs", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}
    )
    op.drop_index("ix_comment_reactions_comment_kind", table_name="comment_reactions")
    op.drop_table("comment_reactions")
    op.drop_index("ix_post_reactions_post_kind", table_name="post_reactions")
    op.drop_table("post_reactions")
    op.drop_index("ix_comments_post_parent", table_name="comments")
    op.drop_table("comments")
    op.drop_index("ix_posts_search", table_name="posts", postgresql_using="gin")
    op.drop_index("ix_posts_club_created", table_name="posts", postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_index("ix_posts_profile_created", table_name="posts")
    op.drop_table("posts")
