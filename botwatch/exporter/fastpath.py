"""The fast path (`remediation.fast_path`): a death seen as an event is checked at once and told to the
remediator, which schedules the restart through its ledger's job path — the same incident, pauses,
deliberate stops, backoff, circuit, one playbook per bot and fencing as a TradingBotDown alert.

The exporter tells its remediator (`POST /death`); an agent tells whichever replica answers
(`POST /agent/death`). A report that can't be delivered within REPORT_FOR is dropped with a warning:
Alertmanager stays the fallback — the exporter goes on checking the dead bot every second, so
TradingBotDown fires as soon as Prometheus sees it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from botwatch.core.deaths import Death, DeathWatch
from botwatch.exporter.monitor import Monitor

log = logging.getLogger(__name__)

REPORT_FOR = 10.0       # seconds a death report is tried for before the alert path is left to it
RETRY_EVERY = 0.5


class FastPath:
    def __init__(self, monitor: Monitor, tell: Callable[[Death], str], docker_client: Callable | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.monitor, self.tell, self.monotonic = monitor, tell, monotonic
        self.deaths = DeathWatch(monitor.config.bots, self.died, **({"client_factory": docker_client}
                                                                     if docker_client else {}))
        self.told: dict[str, int] = {}             # outcome -> count (the remediator's word, or "undelivered")
        self._queue: queue.Queue[Death | None] = queue.Queue()
        self._sender = threading.Thread(target=self._send_all, name="fast-path", daemon=True)
        monitor.on_result.append(self._arm)

    def start(self) -> None:
        self._sender.start()
        self.deaths.start()
        for name, status in self.monitor.snapshot().items():    # the first round ran before the watch
            self._arm(name, status)

    def stop(self) -> None:
        self.deaths.stop()
        self._queue.put(None)
        self._sender.join(timeout=REPORT_FOR + 5)

    def died(self, death: Death) -> None:
        log.warning("%s: %s: checked now, restart asked of the remediator", death.bot, death.detail)
        self.monitor.died(death.bot, death.at, self.monitor.config.remediation.verify_within)
        self._queue.put(death)

    def _arm(self, name: str, status) -> None:
        """After each check: watch the pid it found (a new process after a restart), or none while down."""
        liveness = status.liveness
        self.deaths.arm(name, liveness.pid if liveness is not None and liveness.up and not status.errors else None)

    def _send_all(self) -> None:
        while (death := self._queue.get()) is not None:
            outcome = self._send(death)
            self.told[outcome] = self.told.get(outcome, 0) + 1

    def _send(self, death: Death) -> str:
        until = self.monotonic() + REPORT_FOR
        while True:
            try:
                outcome = self.tell(death)
            except Exception as err:  # the remediator away, or refusing: the alert path takes it
                if self.monotonic() + RETRY_EVERY >= until:
                    log.warning("%s: its death could not be told to the remediator (%s): TradingBotDown will "
                                "ask for the restart", death.bot, err)
                    return "undelivered"
                time.sleep(RETRY_EVERY)
                continue
            log.info("%s: death told to the remediator: %s", death.bot, outcome)
            return outcome
