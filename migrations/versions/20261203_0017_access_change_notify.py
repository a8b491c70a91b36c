"""access change notify: NOTIFY access_changed when a user's access or a session changes

API processes cache authenticated principals in memory; these triggers tell every
process (LISTEN access_changed) which user to forget, so a revoke, ban, role change
or deletion applies at once. The payload is the user's UUID.

Revision ID: 0017
Revises: 0009
Create Date: 2026-12-03 08:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_notify de-duplicates identical payloads within one transaction, so a bulk
    # revoke of a user's sessions sends one message.
    op.execute(
        """
        CREATE FUNCTION notify_user_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('access_changed', OLD.id::text);
            ELSE
                PERFORM pg_notify('access_changed', NEW.id::text);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION notify_session_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('access_changed', OLD.user_id::text);
            ELSE
                -- A moved session (never done today) must drop both owners' entries.
                PERFORM pg_notify('access_changed', OLD.user_id::text);
                PERFORM pg_notify('access_changed', NEW.user_id::text);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER users_access_changed
        AFTER UPDATE OF status, roles ON users FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.roles IS DISTINCT FROM NEW.roles)
        EXECUTE FUNCTION notify_user_access_changed()
        """
    )
    op.execute(
        """
        CREATE TRIGGER users_access_deleted
        AFTER DELETE ON users FOR EACH ROW
        EXECUTE FUNCTION notify_user_access_changed()
        """
    )
    op.execute(
        """
        CREATE TRIGGER auth_sessions_access_changed
        AFTER UPDATE OF revoked_at, user_id ON auth_sessions FOR EACH ROW
        WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.user_id IS DISTINCT FROM NEW.user_id)
        EXECUTE FUNCTION notify_session_access_changed()
        """
    )
    op.execute(
        """
        CREATE TRIGGER auth_sessions_access_deleted
        AFTER DELETE ON auth_sessions FOR EACH ROW
        EXECUTE FUNCTION notify_session_access_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER auth_sessions_access_deleted ON auth_sessions")
    op.execute("DROP TRIGGER auth_sessions_access_changed ON auth_sessions")
    op.execute("DROP TRIGGER users_access_deleted ON users")
    op.execute("DROP TRIGGER users_access_changed ON users")
    op.execute("DROP FUNCTION notify_session_access_changed()")
    op.execute("DROP FUNCTION notify_user_access_changed()")
