"""``python -m routerwise``: the ``routerwise`` command (see :mod:`routerwise.cli`)."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
