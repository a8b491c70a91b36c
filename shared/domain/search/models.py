"""Search indexes on other features' tables: trigram for typo-tolerant names, full text for prose.

They live here, not beside the tables, because search is their only reader.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Index, Table, text

from shared.domain.clubs.models import Club
from shared.domain.users.models import User

# Queries must use these exact expressions for PostgreSQL to pick the GIN indexes.
CLUB_DOCUMENT = "to_tsvector('simple'::regconfig, (name || ' ') || coalesce(description, ''))"
USER_DOCUMENT = "to_tsvector('simple'::regconfig, (display_name || ' ') || coalesce(bio, ''))"

Index(
    "ix_users_display_name_trgm",
    User.display_name,
    postgresql_using="gin",
    postgresql_ops={"display_name": "gin_trgm_ops"},
)
Index("ix_clubs_name_trgm", Club.name, postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"})
cast(Table, Club.__table__).append_constraint(Index("ix_clubs_search", text(CLUB_DOCUMENT), postgresql_using="gin"))
cast(Table, User.__table__).append_constraint(Index("ix_users_search", text(USER_DOCUMENT), postgresql_using="gin"))
