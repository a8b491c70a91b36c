"""Typo-tolerant search over users, clubs and posts."""
