"""Chats: direct and group conversations, messages with per-chat sequence numbers, read state."""
