"""The remediator wired together: the intake, the runner and the periodic work over one ledger.

Webhook deliveries go to the intake, which only records and schedules (durably) and returns at once.
One loop thread wakes when something was scheduled or finished, or at the next due time, and lets the
runner start due actions and the periodic work start what is due; both run in a shared worker pool.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from botwatch.core.config import LOCAL_HOST, Config
from botwatch.core.loop import ServiceLoop
from botwatch.remediator.actions.intake import Intake
from botwatch.remediator.actions.runner import LocalJobs, Outcomes
from botwatch.remediator.executor import Records, build_executor
from botwatch.remediator.intent.acks import Acks
from botwatch.remediator.intent.maintenance import MaintenanceWindows
from botwatch.remediator.intent.pauses import SYNC_EVERY, Pauses
from botwatch.remediator.intent.stops import StopWatch
from botwatch.remediator.metrics import Metrics
from botwatch.remediator.tell.notifier import Notifier

log = logging.getLogger(__name__)

MAX_WAIT = 1.0      # the loop looks at the clock at least this often (periodic work has no wake-up)


class Remediator(ServiceLoop):
    name = "scheduler"

    def __init__(self, config: Config, data_dir: Path, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, runtime_factory: Callable | None = None,
                 notifier: Notifier | None = None, restore: Callable | None = None, metrics: Metrics | None = None,
                 workers: int = 8, ledger: str | None = None, worker: str = "remediator"):
        super().__init__(clock)
        self.retry_after = MAX_WAIT
        data_dir = Path(data_dir)
        self.config = config
        records = Records.open(config, data_dir, ledger, metrics, notifier)
        self.ledger, self.opslog, self.metrics, self.notifier = (records.ledger, records.opslog, records.metrics,
                                                                 records.notifier)
        self.outcomes = Outcomes(config, self.ledger, self.opslog, self.metrics, self.notifier, clock)
        # the bots this remediator acts on itself; other hosts' bots are their agents' jobs
        executor = build_executor(config, LocalJobs(self.ledger, self.outcomes, worker=worker), records, data_dir,
                                  self.wake, host=LOCAL_HOST, runner_config=config.on_host(LOCAL_HOST), clock=clock,
                                  sleep=sleep, runtime_factory=runtime_factory, restore=restore, workers=workers)
        self.runner, self.periodic, self._pool = executor.runner, executor.periodic, executor.pool
        notify = lambda text: self._pool.submit(self.notifier.send, text)    # noqa: E731
        self.intake = Intake(config, self.ledger, self.opslog, clock, on_scheduled=self.wake, learned=executor.learned,
                             notify=notify)
        # what the operator decided: pauses, maintenance windows, deliberate stops; asked before every playbook
        self.pauses = Pauses(config, self.ledger, self.opslog, notify, clock)
        self.stops = StopWatch(config, self.ledger, self.pauses, self.runner.runtimes, self.runner.apis, clock,
                               busy=self.runner.busy)
        self.pauses.on_resumed = self.stops.resumed
        self.runner.intent = self.stops.check
        self.runner.after = self.stops.look_after          # the first look after a start, at once
        self.maintenance = MaintenanceWindows(config, self.pauses, clock)
        self.acks = Acks(self.ledger, self.pauses.silences, self.opslog, clock)
        self.commands = self._commands(worker, clock)
        self._upkept = 0.0
        self._upkeeping = threading.Lock()
        if self.ledger.dialect == "sqlite":     # this remediator owns the file: what ran here when it died runs again
            requeued = self.ledger.requeue_interrupted(clock())
            if requeued:
                log.warning("%d action(s) were interrupted by a restart; running them again", requeued)

    def upkeep(self) -> None:
        """Maintenance windows that began, pauses that ran out or lost their silence (Alertmanager calls)."""
        if not self._upkeeping.acquire(blocking=False):
            return                    # the last round still waits on an Alertmanager
        try:
            self.maintenance.tick()
            self.pauses.sync(force=True)
            self.acks.sync()
        except Exception:  # the ledger away: the next round tries again
            log.exception("pauses and maintenance windows: upkeep failed")
        finally:
            self._upkeeping.release()

    def _commands(self, worker: str, clock):
        """The Telegram commands' poller, when `telegram.commands.enabled` (and the bot's token could be read)."""
        if not self.config.telegram.commands.enabled:
            return None
        if not self.notifier.token:
            log.error("telegram.commands: no bot token could be read from telegram.bot_token_file: no commands")
            return None
        from botwatch.remediator.talk.botapi import BotApi
        from botwatch.remediator.talk.desk import Desk
        from botwatch.remediator.talk.poller import Poller
        api = BotApi(self.config.telegram.api_url, self.notifier.token)
        desk = Desk(self.config, self, api, clock)
        return Poller(api, desk.handle, self.ledger, worker, self.config.telegram.commands.poll_timeout, clock)

    def start(self) -> None:
        super().start()
        if self.commands is not None:
            self.commands.start()

    def stop(self, wait: bool = True) -> None:
        if self.commands is not None:
            self.commands.stop()
        super().stop()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def step(self) -> float:
        self.runner.dispatch_due()
        self.periodic.tick()
        self.stops.tick(self._pool.submit)
        if self.clock() - self._upkept >= SYNC_EVERY:
            self._upkept = self.clock()
            self._pool.submit(self.upkeep)
        self.ledger.expire(self.clock())
        next_at = self.ledger.next_run_at()
        return MAX_WAIT if next_at is None else max(0.05, min(MAX_WAIT, next_at - self.clock()))
