"""The remediator wired together: the intake, the runner and the periodic work over one ledger.

Webhook deliveries go to the intake, which only records and schedules (durably) and returns at once.
One loop thread wakes when something was scheduled or finished, or at the next due time, and lets the
runner start due actions and the periodic work start what is due; both run in a shared worker pool.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from botwatch.core.config import Config
from remediator.intake import Intake
from remediator.ledger import Ledger
from remediator.metrics import Metrics
from remediator.notifier import Notifier
from remediator.opslog import OperationsLog
from remediator.periodic import PeriodicWork
from remediator.runner import Runner
from remediator.runtimes import runtime_for

MAX_WAIT = 1.0      # the loop looks at the clock at least this often (periodic work has no wake-up)


class Remediator:
    def __init__(self, config: Config, data_dir: Path, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, runtime_factory: Callable | None = None,
                 notifier: Notifier | None = None, restore: Callable | None = None, metrics: Metrics | None = None,
                 workers: int = 8):
        data_dir = Path(data_dir)
        self.config = config
        self.clock = clock
        self.ledger = Ledger(data_dir / "ledger.sqlite3")
        self.opslog = OperationsLog(data_dir / "memory" / "bot-operations.md")
        self.metrics = metrics or Metrics([bot.name for bot in config.bots], self.ledger)
        self.notifier = notifier or Notifier(config.telegram, outbox=data_dir / "telegram-outbox.jsonl")
        self.notifier.on_outcome = lambda outcome: self.metrics.notifications.labels(outcome).inc()
        factory = runtime_factory or (lambda bot: runtime_for(bot, data_dir / "bot-output"))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="playbook")
        self._thread: threading.Thread | None = None
        learned: dict[str, str] = {}     # bot -> exchange, from preset bots' own APIs (periodic fills it)
        self.intake = Intake(config, self.ledger, self.opslog, clock, on_scheduled=self._wake.set, learned=learned)
        self.runner = Runner(config, self.ledger, self.opslog, self.metrics, self.notifier,
                             {bot.name: factory(bot) for bot in config.bots}, self._pool, clock, sleep, restore,
                             on_done=self._wake.set, mirror_dir=data_dir, learned=learned)
        self.periodic = PeriodicWork(config, self.ledger, self.opslog, self.metrics, self.notifier, self._pool, clock,
                                     mirror_dir=data_dir, learned=learned)

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
            self.runner.dispatch_due()
            self.periodic.tick()
            next_at = self.ledger.next_run_at()
            timeout = MAX_WAIT if next_at is None else max(0.05, min(MAX_WAIT, next_at - self.clock()))
            self._wake.wait(timeout)
            self._wake.clear()
