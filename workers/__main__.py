"""``python -m workers``."""

from workers.main import main

main()
