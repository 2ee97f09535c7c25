"""``python -m engagequeue``: the same as the ``engagequeue`` command."""

from __future__ import annotations

import sys

from engagequeue.cli import main

if __name__ == "__main__":
    sys.exit(main())
