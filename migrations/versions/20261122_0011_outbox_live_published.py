"""outbox: live_published_at, so self-published (chat) rows still reach their jobs

Revision ID: 0011
Revises: 0005
Create Date: 2026-11-22 03:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column the chat service stamps after publishing a row itself."""
    op.add_column("outbox", sa.Column("live_published_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    op.drop_column("outbox", "live_published_at")
