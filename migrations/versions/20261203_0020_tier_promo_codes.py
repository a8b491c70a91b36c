"""tier promo codes: creators and club owners own promo codes for their tiers

A code with no owner stays a platform code (plans only); ``owner_id`` alone scopes a code to that
creator's own tiers, with ``club_id`` to that club's tiers.

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("promo_codes", sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.add_column("promo_codes", sa.Column("club_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_promo_codes_owner_id_users"), "promo_codes", "users", ["owner_id"], ["id"], ondelete="CASCADE"
    )
    op.create_foreign_key(
        op.f("fk_promo_codes_club_id_clubs"), "promo_codes", "clubs", ["club_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index(op.f("ix_promo_codes_owner_id"), "promo_codes", ["owner_id"], unique=False)
    op.create_index(op.f("ix_promo_codes_club_id"), "promo_codes", ["club_id"], unique=False)
    op.create_check_constraint(
        op.f("ck_promo_codes_club_has_owner"), "promo_codes", "club_id IS NULL OR owner_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_promo_codes_club_has_owner"), "promo_codes", type_="check")
    op.drop_index(op.f("ix_promo_codes_club_id"), table_name="promo_codes")
    op.drop_index(op.f("ix_promo_codes_owner_id"), table_name="promo_codes")
    op.drop_constraint(op.f("fk_promo_codes_club_id_clubs"), "promo_codes", type_="foreignkey")
    op.drop_constraint(op.f("fk_promo_codes_owner_id_users"), "promo_codes", type_="foreignkey")
    op.drop_column("promo_codes", "club_id")
    op.drop_column("promo_codes", "owner_id")
