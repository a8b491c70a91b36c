"""arq jobs, one module per domain; each takes one msgspec Struct and is idempotent."""
