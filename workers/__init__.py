"""The arq worker: typed jobs per domain, the outbox relay, and the process entry point."""
