"""The ``reviewer`` command line: one module per command group.

``base`` holds the group, its context and what every command shares; each
other module registers its commands on the group when imported here. A new
command group is a new module in this package, listed below.
"""

from __future__ import annotations

from reviewer.cli import (  # noqa: F401  (each module registers its commands)
    ab,
    audit,
    config,
    controls,
    demo,
    findings,
    goals,
    incidents,
    ingest,
    metrics,
    migrate,
    notify,
    proposals,
    report,
    review,
    rules,
    run,
    runs,
    silence,
)
from reviewer.cli.base import cli, main

__all__ = ["cli", "main"]
