"""Named crash points for tests of exactly-once behaviour.

``REVIEWER_FAILPOINT=schedule.after_insert reviewer proposals approve 3`` makes the
process die at that point the way a kill would (no cleanup, no commit), so a
test can prove that the next run neither loses nor doubles the work.
"""

from __future__ import annotations

import os
import time

FAILPOINT_ENV = "REVIEWER_FAILPOINT"
FAILPOINT_EXIT = 86


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(FAILPOINT_EXIT)


PAUSEPOINT_ENV = "REVIEWER_PAUSEPOINT"


def pausepoint(name: str) -> None:
    """Sleep at a named point when ``REVIEWER_PAUSEPOINT=name:seconds``: a slow step, on demand."""
    point, _, seconds = os.environ.get(PAUSEPOINT_ENV, "").partition(":")
    if point == name:
        time.sleep(float(seconds or 1))
