"""The one loop every long-running part has: a thread that runs a step, then waits until the step's own
timeout or until woken; a step that fails is said in the log now and then and tried again.

The exporter's check scheduler, the remediator's scheduler and an agent's executor are each a ServiceLoop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

TROUBLE_LOG_EVERY = 30.0     # while a step keeps failing, the loop says so this often


class ServiceLoop:
    name = "loop"
    retry_after = 1.0        # the wait after a step that raised

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._trouble_said: dict[str, float] = {}

    def step(self) -> float:
        """One round of work; how long to wait before the next one (unless woken)."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the loop after its current step (waiting up to 5 s for it)."""
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        """Run the next step now: something was scheduled or finished."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def trouble(self, message: str, kind: str = "") -> None:
        """Say a failure in the log, at most every TROUBLE_LOG_EVERY seconds per kind of failure."""
        if self.clock() - self._trouble_said.get(kind, float("-inf")) >= TROUBLE_LOG_EVERY:
            self._trouble_said[kind] = self.clock()
            log.error("%s: %s", self.name, message)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                timeout = self.step()
            except Exception as err:  # a dependency away (a ledger, a remediator) or a bug: said, tried again
                self.trouble(f"step failed: {err}")
                timeout = self.retry_after
            self._wake.wait(max(0.0, timeout))
            self._wake.clear()
