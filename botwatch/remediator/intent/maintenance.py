"""Maintenance windows → pauses: each occurrence of a window (`maintenance:` in the config) becomes one
pause, with one silence, made when it starts and ended when it closes; each is announced once at its start
and once at its end. The ledger's unique occurrence key keeps two remediators on one ledger from making it
twice, and the silence is looked for in Alertmanager first (two remediators on two ledgers, one cluster).
"""

from __future__ import annotations

import logging
from typing import Callable

from botwatch.core.config import Config
from botwatch.remediator.intent.pauses import Pauses, Scope

log = logging.getLogger(__name__)

WHO = "maintenance window"


def occurrence_key(name: str, start: float) -> str:
    return f"{name}@{int(start)}"


class MaintenanceWindows:
    def __init__(self, config: Config, pauses: Pauses, clock: Callable[[], float]):
        self.config, self.pauses, self.clock = config, pauses, clock

    def tick(self) -> None:
        """Make the pause of every window under way that has none yet."""
        now = self.clock()
        for window in self.config.maintenance:
            occurrence = window.occurrence(now)
            if occurrence is None:
                continue
            start, end = occurrence
            kind, targets = window.scope
            scope = Scope(bots=tuple(targets)) if kind == "bot" else Scope(host=targets[0]) if kind == "host" \
                else Scope(all=True)
            key = occurrence_key(window.name, start)
            made = self.pauses.pause(scope, end, window.name, WHO, reason="maintenance", occurrence=key,
                                     since=start, together=True)
            for pause in made:
                log.info("maintenance %r: %s", window.name, self.pauses.says(pause))
