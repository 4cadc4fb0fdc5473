"""The remediator wired together: the intake, the runner and the periodic work over one ledger.

Webhook deliveries go to the intake, which only records and schedules (durably) and returns at once.
One loop thread wakes when something was scheduled or finished, or at the next due time, and lets the
runner start due actions and the periodic work start what is due; both run in a shared worker pool.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from botwatch.core.config import LOCAL_HOST, Config
from botwatch.remediator.actions.intake import Intake
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.metrics import Metrics
from botwatch.remediator.tell.notifier import Notifier
from botwatch.remediator.tell.opslog import OperationsLog
from botwatch.remediator.actions.periodic import PeriodicWork
from botwatch.remediator.actions.runner import LocalJobs, Outcomes, Runner
from botwatch.remediator.runtimes import runtime_for

log = logging.getLogger(__name__)

MAX_WAIT = 1.0      # the loop looks at the clock at least this often (periodic work has no wake-up)
TROUBLE_LOG_EVERY = 30.0   # while the ledger is unreachable, the loop says so this often


class Remediator:
    def __init__(self, config: Config, data_dir: Path, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, runtime_factory: Callable | None = None,
                 notifier: Notifier | None = None, restore: Callable | None = None, metrics: Metrics | None = None,
                 workers: int = 8, ledger: str | None = None, worker: str = "remediator"):
        data_dir = Path(data_dir)
        self.config = config
        self.clock = clock
        self.ledger = Ledger(ledger or data_dir / "ledger.sqlite3")
        self.opslog = OperationsLog(data_dir / "memory" / "bot-operations.md")
        self.metrics = metrics or Metrics([bot.name for bot in config.bots], self.ledger)
        self.notifier = notifier or Notifier(config.telegram, outbox=data_dir / "telegram-outbox.jsonl")
        self.notifier.on_outcome = lambda outcome: self.metrics.notifications.labels(outcome).inc()
        factory = runtime_factory or (lambda bot: runtime_for(bot, data_dir / "bot-output"))
        local = config.on_host(LOCAL_HOST)       # the bots this remediator acts on itself; other hosts' agents
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="playbook")
        self._thread: threading.Thread | None = None
        learned: dict[str, str] = {}     # bot -> exchange, from preset bots' own APIs (periodic fills it)
        self.intake = Intake(config, self.ledger, self.opslog, clock, on_scheduled=self._wake.set, learned=learned)
        self.outcomes = Outcomes(config, self.ledger, self.opslog, self.metrics, self.notifier, clock)
        self.runner = Runner(local, LocalJobs(self.ledger, self.outcomes, worker=worker),
                             {bot.name: factory(bot) for bot in local.bots}, self._pool, clock, sleep, restore,
                             on_done=self._wake.set, mirror_dir=data_dir, learned=learned)
        if self.ledger.dialect == "sqlite":     # this remediator owns the file: what ran here when it died runs again
            requeued = self.ledger.requeue_interrupted(clock())
            if requeued:
                log.warning("%d action(s) were interrupted by a restart; running them again", requeued)
        self.periodic = PeriodicWork(config, self.ledger, self.opslog, self.metrics, self.notifier, self._pool, clock,
                                     mirror_dir=data_dir, learned=learned, host=LOCAL_HOST)
        self._trouble_said = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.runner.dispatch_due()
                self.periodic.tick()
                self.ledger.expire(self.clock())
                next_at = self.ledger.next_run_at()
            except Exception as err:  # the ledger unreachable (PostgreSQL down): try again, say so now and then
                next_at = None
                if self.clock() - self._trouble_said >= TROUBLE_LOG_EVERY:
                    self._trouble_said = self.clock()
                    log.error("the scheduler loop failed: %s", err)
            timeout = MAX_WAIT if next_at is None else max(0.05, min(MAX_WAIT, next_at - self.clock()))
            self._wake.wait(timeout)
            self._wake.clear()
