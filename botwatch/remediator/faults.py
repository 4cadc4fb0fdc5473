"""Faults for the crash-safety and HA tests: with BOTWATCH_CRASH_AT=STEP in its environment, the
remediator kills itself (SIGKILL: no cleanup, no flush) the first time it reaches STEP; with
BOTWATCH_WEBHOOK_DELAY=SECONDS it answers each webhook that much later (after recording it).

The steps: `PLAYBOOK-started` (an action of that playbook is marked running, nothing done yet: e.g.
`restart-started`), `restart-before` / `restart-after` (around the restart command) and `restart-verified`,
`restore/STEP` for each step of the restore procedure (CSV: planned, stopped, quarantined, built,
written, replaced, started; SQLite: planned, stopped, quarantined, written, built, replaced, started),
and `PLAYBOOK-finished` (the outcome is in the ledger; the operations log and the
notice are not). Unset, this costs one lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BOTWATCH_CRASH_AT"
DELAY_ENV = "BOTWATCH_WEBHOOK_DELAY"     # seconds POST /alerts waits, after recording, before it answers


def reached(step: str) -> None:
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def webhook_delay() -> float:
    """A slow receiver, for the HA tests: Alertmanager's other peer resends what this one is slow to confirm."""
    try:
        return max(0.0, float(os.environ.get(DELAY_ENV, "0")))
    except ValueError:
        return 0.0
