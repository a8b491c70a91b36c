"""chat settings audit: the moderation audit log records chats made read-only or writable again

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ACTIONS = (
    "action IN ('case.approve', 'case.remove', 'case.dismiss', 'message.remove', 'blocklist.add', "
    "'blocklist.delete', 'place.hide', 'place.remove', 'place.restore', 'list.hide', 'list.remove', "
    "'list.restore', 'content.dismiss')"
)
NEW_ACTIONS = (
    "action IN ('case.approve', 'case.remove', 'case.dismiss', 'message.remove', 'chat.read_only_on', "
    "'chat.read_only_off', 'blocklist.add', 'blocklist.delete', 'place.hide', 'place.remove', 'place.restore', "
    "'list.hide', 'list.remove', 'list.restore', 'content.dismiss')"
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", type_="check")
    op.create_check_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", NEW_ACTIONS)


def downgrade() -> None:
    # The log is append-only: rows of the new actions stay, so the old check only binds new rows (NOT VALID).
    op.drop_constraint(op.f("ck_moderation_audit_log_action"), "moderation_audit_log", type_="check")
    op.execute(
        f"ALTER TABLE moderation_audit_log ADD CONSTRAINT ck_moderation_audit_log_action CHECK ({OLD_ACTIONS}) NOT VALID"
    )
