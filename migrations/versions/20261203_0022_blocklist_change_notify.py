"""blocklist change notify: NOTIFY blocklist_changed when a blocklist term is added, changed or removed

API and gateway processes cache each scope's blocklist terms in memory to screen every chat
message without a query; this trigger tells every process (LISTEN blocklist_changed) which
scope to forget. The payload is the club's UUID, or empty for the platform-wide list.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Statement-level would need transition tables for the scope; row-level is fine, as lists change
    # rarely and pg_notify folds identical payloads of one transaction into one message.
    op.execute(
        """
        CREATE FUNCTION notify_blocklist_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                PERFORM pg_notify('blocklist_changed', COALESCE(OLD.club_id::text, ''));
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                PERFORM pg_notify('blocklist_changed', COALESCE(NEW.club_id::text, ''));
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER blocklist_terms_changed
        AFTER INSERT OR UPDATE OR DELETE ON blocklist_terms
        FOR EACH ROW EXECUTE FUNCTION notify_blocklist_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER blocklist_terms_changed ON blocklist_terms")
    op.execute("DROP FUNCTION notify_blocklist_changed()")
