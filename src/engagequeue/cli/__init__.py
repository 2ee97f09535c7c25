"""The ``engagequeue`` command line (``python -m engagequeue``); see docs/cli.md.

Built with click, a core dependency, so ``pip install engagequeue`` is enough for
``engagequeue demo``. Commands that need an optional extra (``serve``: ``[http]``,
``--transport waha``: ``[gateways]``, ``--metrics-port``: ``[metrics]``, a PostgreSQL
database: ``[postgres]``) say which one to install.
"""

from __future__ import annotations

from . import _demo, _recurring, _serve, _tasks, _worker
from ._app import cli, main

__all__ = ["cli", "main"]

del _demo, _recurring, _serve, _tasks, _worker  # imported for the commands they register
