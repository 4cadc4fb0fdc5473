"""Crash points for the crash-safety tests and `make chaos`: with BOTWATCH_CRASH_AT=STEP in its
environment, the remediator kills itself (SIGKILL: no cleanup, no flush) the first time it reaches STEP.

The steps: `PLAYBOOK-started` (an action of that playbook is marked running, nothing done yet: e.g.
`restart-started`), `restart-before` / `restart-after` (around the restart command) and `restart-verified`,
`restore/STEP` for each step of the restore procedure (planned, stopped, quarantined, built, written,
replaced, started), and `PLAYBOOK-finished` (the outcome is in the ledger; the operations log and the
notice are not). Unset, this costs one lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BOTWATCH_CRASH_AT"


def reached(step: str) -> None:
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
