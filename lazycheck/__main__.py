"""``python -m lazycheck``."""

from lazycheck.cli import main

main()
