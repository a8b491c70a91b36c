"""event feed indexes: newly published events per club and per organizer

Revision ID: 0010
Revises: 0011
Create Date: 2026-11-22 03:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_events_club_feed",
        "events",
        ["club_id", "published_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'published'"),
    )
    op.create_index(
        "ix_events_organizer_feed",
        "events",
        ["organizer_id", "published_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'published' AND visibility = 'public'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_events_organizer_feed",
        table_name="events",
        postgresql_where=sa.text("status = 'published' AND visibility = 'public'"),
    )
    op.drop_index("ix_events_club_feed", table_name="events", postgresql_where=sa.text("status = 'published'"))
