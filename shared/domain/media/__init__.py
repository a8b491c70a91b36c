"""Media: presigned uploads, verification, processing, attachment, moderation and lifecycle."""
