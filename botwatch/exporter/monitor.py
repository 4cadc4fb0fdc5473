"""Runs each bot's checks at most once per its check_interval, in a worker pool, and keeps the results.

Scrapes read the last results and never wait on a check, so one slow health endpoint can't stall
them; different bots are checked concurrently. The checks that fall due together are a round: their
process-name probes share one scan of /proc.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

from botwatch.core.checks import BotCheck, BotStatus
from botwatch.core.config import Config
from botwatch.core.liveness import ProcessTable
from botwatch.core.loop import ServiceLoop
from botwatch.exporter.checkpoints import Checkpoints
from botwatch.exporter.peaks import Peaks

log = logging.getLogger(__name__)

MAX_WORKERS = 16
RECHECK_AFTER_DEATH = 1.0     # seconds between checks of a bot whose death was an event, until it is up again


class Monitor(ServiceLoop):
    name = "scheduler"

    def __init__(self, config: Config, check_factory: Callable | None = None,
                 monotonic: Callable[[], float] = time.monotonic, checkpoints: Checkpoints | None = None):
        super().__init__()
        self.config = config
        self.monotonic = monotonic
        self.processes = ProcessTable(rounds=True)       # one /proc scan per round, for every process-name probe
        check_factory = check_factory or (lambda bot: BotCheck(bot, processes=self.processes))
        self.checks = {bot.name: check_factory(bot) for bot in config.bots}
        self.checkpoints = checkpoints
        self.on_result: list[Callable[[str, BotStatus], None]] = []     # called in the check thread
        if checkpoints:
            for check in self.checks.values():
                if hasattr(check.store, "checkpoint"):
                    checkpoints.load(check.bot, check.store)
        self.results: dict[str, BotStatus] = {}
        # bot -> what holds it (pause, maintenance, operator_stop), as the remediator's ledger says; None while
        # no remediator was asked (tradingbot_paused is then not published: unknown is not "not paused")
        self.paused: dict[str, str] | None = None
        self.clocks = None     # the exchanges' clocks (exporter.clocks.ExchangeClocks), when a bot names one
        self.drift = None      # its positions against the exchange's balances (exporter.drift.DriftChecks), likewise
        self.peaks = Peaks(checkpoints.dir if checkpoints else None)    # equity peaks, beside the checkpoints
        self.failures: dict[str, int] = dict.fromkeys(self.checks, 0)   # rounds that raised (bugs)
        self._due = dict.fromkeys(self.checks, 0.0)
        self._hurried: dict[str, float] = {}      # bot -> until when it is checked every RECHECK_AFTER_DEATH
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(self.checks))),
                                        thread_name_prefix="check")

    def run_once(self) -> dict[str, BotStatus]:
        """Check every bot now, concurrently, and wait for all of them."""
        self.processes.new_round()
        futures = [self._pool.submit(self._check, name) for name in self.checks]
        wait(futures)
        return self.snapshot()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for check in self.checks.values():
            check.close()

    def snapshot(self) -> dict[str, BotStatus]:
        with self._lock:
            return dict(self.results)

    def died(self, name: str, at: float, hurry_for: float) -> None:
        """A death event: check the bot now, so tradingbot_up says 0 at once (its down episode began `at`),
        then every RECHECK_AFTER_DEATH seconds while it is down, for up to `hurry_for` seconds: so its
        restart shows as soon as it is up, and, should no restart come, the two-check rule's second check
        is a second away, not a check_interval."""
        check = self.checks.get(name)
        if check is None:
            return
        check.died(at)
        with self._lock:
            self._due[name] = 0.0
            self._hurried[name] = self.monotonic() + hurry_for
        self.wake()

    def step(self) -> float:
        """Start the checks that are due; the wait until the next one is."""
        now = self.monotonic()
        with self._lock:
            due = [name for name, at in self._due.items() if at <= now and name not in self._running]
            self._running.update(due)
        if due:
            self.processes.new_round()
        for name in due:
            self._pool.submit(self._check, name)
        with self._lock:
            waiting = [at for name, at in self._due.items() if name not in self._running]
        return min(max(0.05, min(waiting, default=now + 1.0) - now), 1.0)

    def _checkpoint(self, check: BotCheck) -> None:
        if not self.checkpoints or not hasattr(check.store, "checkpoint"):
            return
        try:
            self.checkpoints.save(check.bot, check.store)
        except OSError as err:   # a full disk costs the next start a re-read, never a check
            log.warning("%s: can't write its checkpoint: %s", check.bot.name, err)

    def _check(self, name: str) -> None:
        check = self.checks[name]
        started = self.monotonic()
        try:
            status = check.run()
            if status.datafile.valid:         # a file found corrupt says nothing of the equity: the peak stays
                status = dataclasses.replace(status, equity_peak=self.peaks.update(check.bot, status.book.equity))
            else:
                status = dataclasses.replace(status, equity_peak=self.peaks.value(name))
        except Exception:  # a bug in a check must not stop the others
            log.exception("%s: the check round failed", name)
            with self._lock:
                self.failures[name] += 1
        else:
            with self._lock:
                self.results[name] = status
            for hook in self.on_result:
                try:
                    hook(name, status)
                except Exception:  # a page that can't be pre-rendered is rendered by the scrape
                    log.exception("%s: rendering its metrics failed", name)
            self._checkpoint(check)
        finally:
            with self._lock:
                interval = check.bot.check_interval
                status = self.results.get(name)
                if self._hurried.get(name, 0.0) > self.monotonic() and status is not None and not status.up:
                    interval = min(interval, RECHECK_AFTER_DEATH)
                else:
                    self._hurried.pop(name, None)
                self._due[name] = started + interval
                self._running.discard(name)
            self.wake()
