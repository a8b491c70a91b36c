"""Chat moderation: blocklists, reports (cases) and the append-only moderation audit log."""
