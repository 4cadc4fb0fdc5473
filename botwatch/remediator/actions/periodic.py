"""Periodic work: the fill mirrors of preset bots, the hourly backups with their pruning, and the morning
report with its HA claim.

`tick()` is called by the engine's loop; it decides what is due (durably, in the ledger) and hands the
work to the pool, never running two backups or two reports at once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot, Config
from botwatch.remediator.actions import scheduler
from botwatch.remediator.restore.backup import BackupResult, S3Store, backup_bot, prune, store_for
from botwatch.remediator.restore.kinds import fill_mirror
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.metrics import Metrics
from botwatch.remediator.tell.notifier import Notifier, escape
from botwatch.remediator.tell.opslog import OperationsLog

log = logging.getLogger(__name__)

REPORT_RETRY, REPORT_TRIES = 600.0, 3   # a failed morning report is tried again 10 min later, 3 tries in all
MIRROR_INTERVAL = 2.0      # seconds between syncs of the fill mirrors: one small API call per preset bot
BACKUP_RETRY = 60.0        # a bot not backed up yet (its file missing or invalid at the last round) is tried
                           # again this often, not an hour later: a database has no journal to rebuild from


def record_backup(ledger: Ledger, opslog: OperationsLog, metrics: Metrics, now: float, bot: Bot, outcome: str,
                  detail: str, duration: float, created: float | None) -> None:
    """A backup in the ledger, the operations log and the metrics: made here, or told by a host's agent."""
    ledger.record(bot.name, "backup", now, outcome, detail, host=bot.host)
    opslog.append(now, bot.name, None, "backup", outcome, duration, detail)
    metrics.backups.labels(bot.name, outcome).inc()
    if outcome == "success" and created is not None:
        metrics.last_backup.labels(bot.name).set(created)
    log.info("%s: backup %s: %s", bot.name, outcome, detail)


class PeriodicWork:
    def __init__(self, config: Config, ledger: Ledger, opslog: OperationsLog, metrics: Metrics, notifier: Notifier,
                 pool: Executor, clock: Callable[[], float], mirror_dir: Path | None = None,
                 learned: dict[str, str] | None = None, host: str | None = None,
                 on_backup: Callable[[BackupResult, float], None] | None = None):
        self.config = config
        self.on_backup = on_backup         # an agent also tells the central remediator of each backup
        # the bots whose files are on this machine (their mirrors and backups are made here): all, or one host's
        self.bots = [bot for bot in config.bots if host is None or bot.host == host]
        self.ledger = ledger
        self.opslog = opslog
        self.metrics = metrics
        self.notifier = notifier
        self.pool = pool
        self.clock = clock
        self._backing_up = threading.Lock()
        self._reporting = threading.Lock()
        self._report_retry: tuple[float, int] | None = None    # (when, tries left) after a report that failed
        self.learned = learned if learned is not None else {}    # bot -> exchange, as its own API said
        self._mirroring = threading.Lock()
        self._mirrored_at = 0.0
        self._backed_up: set[str] = set()      # bots with a good backup made by this remediator
        self._waiting: set[str] = set()        # bots skipped at a round that have none yet
        self._retried_at = 0.0
        self.mirrors = [mirror for bot in self.bots
                        if mirror_dir and (mirror := fill_mirror(bot, mirror_dir)) is not None]

    def tick(self) -> None:
        self.maybe_mirror()
        self.maybe_backup()
        self.maybe_report()

    # -- fill mirrors ----------------------------------------------------------------------------------

    def maybe_mirror(self) -> None:
        if self.mirrors and self.clock() - self._mirrored_at >= MIRROR_INTERVAL and not self._mirroring.locked():
            self._mirrored_at = self.clock()
            self.pool.submit(self.mirror)

    def _learn_exchange(self, mirror) -> None:
        """A Freqtrade bot without an `exchange` key names its exchange in /api/v1/show_config (asked once)."""
        api = getattr(mirror, "api", None)
        answer = api.get("show_config") if api is not None else None
        if isinstance(answer, dict) and isinstance(answer.get("exchange"), str) and answer["exchange"]:
            self.learned[mirror.bot.name] = answer["exchange"]

    def mirror(self) -> int:
        """Copy each preset bot's newly closed trades into its mirror; how many in all."""
        with self._mirroring:
            copied = 0
            for mirror in self.mirrors:
                try:
                    copied += mirror.sync()
                    if mirror.bot.exchange is None and mirror.bot.name not in self.learned:
                        self._learn_exchange(mirror)
                except OSError as err:      # a full disk: said in the log, tried again next time
                    log.warning("%s: fill mirror: %s", mirror.bot.name, err)
            return copied

    # -- backups ---------------------------------------------------------------------------------------

    def maybe_backup(self) -> None:
        if self._backing_up.locked():
            return
        last = self.ledger.get("last_backup_run", 0.0)
        if self.clock() - last >= self.config.backup.interval:
            self.ledger.put("last_backup_run", self.clock())
            self._retried_at = self.clock()
            self.pool.submit(self.backup)
        elif self._waiting and self.clock() - self._retried_at >= BACKUP_RETRY:
            self._retried_at = self.clock()
            self.pool.submit(self.backup, sorted(self._waiting), True)

    def backup(self, names: list[str] | None = None, retry: bool = False) -> list[BackupResult]:
        """Back up each (named) bot's valid trade file, prune old backups; recorded like any action (a
        retry of a bot with no backup yet only when it is done or failed, not each time it is skipped)."""
        with self._backing_up:
            try:
                store, store_error = store_for(self.config.backup), None
            except Exception as err:  # boto3 could not even build a client (bad region, ...)
                store, store_error = None, f"backup store: {err}"
            results = []
            for bot in self.bots:
                if names and bot.name not in names:
                    continue
                started = time.monotonic()
                result = BackupResult(bot.name, "failed", store_error) if store is None else backup_bot(
                    bot, store, self.clock)
                if result.outcome == "success":
                    self._prune(bot.name, store)
                    self._backed_up.add(bot.name)
                    self._waiting.discard(bot.name)
                elif result.outcome == "skipped" and bot.name not in self._backed_up:
                    self._waiting.add(bot.name)
                results.append(result)
                if not (retry and result.outcome == "skipped"):
                    self._record_backup(result, time.monotonic() - started)
            failed = [r for r in results if r.outcome == "failed"]
            if failed:
                self.notifier.send("💾 backup failed for " + ", ".join(
                    f"<b>{escape(r.bot)}</b>: {escape(r.detail)}" for r in failed))
            return results

    def _prune(self, bot: str, store) -> None:
        try:
            removed = prune(bot, store, self.config.backup.keep_hourly, self.config.backup.keep_daily)
        except Exception as err:  # pruning is housekeeping: a failure is logged, the backup stands
            log.warning("%s: pruning old backups failed: %s", bot, err)
            return
        if removed:
            log.info("%s: %d old backup(s) pruned", bot, removed)

    def _record_backup(self, result: BackupResult, duration: float) -> None:
        record_backup(self.ledger, self.opslog, self.metrics, self.clock(), self.config.bot(result.bot), result.outcome,
                      result.detail,
                      duration, result.manifest.created if result.manifest else None)
        if self.on_backup is not None:
            self.on_backup(result, duration)

    # -- the morning report ----------------------------------------------------------------------------

    def maybe_report(self) -> None:
        report = self.config.report
        if not report.enabled or self._reporting.locked():
            return
        if self._report_retry is not None and self.clock() >= self._report_retry[0]:
            self._report_retry = (float("inf"), self._report_retry[1])     # taken: submitted once
            self.pool.submit(self.send_report)
            return
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        occurrence = scheduler.due(report.at, report.timezone, now, self.ledger.get("last_report_for"))
        if occurrence is None:
            return
        key = occurrence.isoformat()
        self.ledger.put("last_report_for", key)   # decided once, whatever the delivery does
        if not self._claim_report(key):
            log.info("the %s report was claimed by another remediator", key)
            return
        self.pool.submit(self.send_report)

    def _claim_report(self, key: str) -> bool:
        """Whether this remediator sends the report: the first to claim it in the shared backup store."""
        name = f"report-{key.replace(':', '')}"
        try:
            s3 = self.config.backup.s3
            if s3:
                store = S3Store(s3.bucket, s3.prefix, s3.endpoint_url, s3.region)
                return scheduler.claim_s3(store.client, s3.bucket, f"{store.prefix}claims/{name}")
            return scheduler.claim(Path(self.config.backup.dir) / ".claims", name)
        except Exception as err:  # no shared place to claim in: better two reports than none
            log.warning("could not claim the report (%s); sending it anyway", err)
            return True

    def send_report(self) -> bool:
        """Build the report over `report.window` and send it (text, then the chart). A report that could not
        be built or sent is never silent: logged, counted, in the operations log, said in a short notice,
        and tried again REPORT_RETRY later (REPORT_TRIES in all)."""
        from botwatch.remediator.playbooks import VERBS
        from botwatch.remediator.tell.report import build_report   # pandas and matplotlib: only when a report is due
        with self._reporting:
            started = time.monotonic()
            try:
                result = build_report(self.config, self.config.report.prometheus_url, self.ledger,
                                      self.config.report.window, self.clock(), verbs=VERBS)
                ok = self.notifier.send(result.text)
                if result.chart:
                    ok &= self.notifier.send_photo(result.chart, caption=escape(result.title), filename="report.png")
                detail = ("; ".join(result.unknown) or "sent") if ok else "Telegram did not take it"
            except Exception as err:  # a bug or a dependency away: the day's report must not vanish with it
                log.exception("the daily report could not be built")
                ok, detail = False, f"not built: {type(err).__name__}: {err}"
            outcome = "success" if ok else "failed"
            self.metrics.reports.labels(outcome).inc()
            self.opslog.append(self.clock(), "all bots", None, "report", outcome, time.monotonic() - started, detail)
            log.log(logging.INFO if ok else logging.ERROR, "daily report %s: %s", outcome, detail)
            self._schedule_report_retry(ok, detail)
            return ok

    def _schedule_report_retry(self, ok: bool, detail: str) -> None:
        tries_left = self._report_retry[1] if self._report_retry else REPORT_TRIES
        if ok or tries_left <= 1:
            self._report_retry = None
            if not ok:
                log.error("the daily report failed %d times; the next one is tomorrow's", REPORT_TRIES)
            return
        self._report_retry = (self.clock() + REPORT_RETRY, tries_left - 1)
        self.notifier.send(f"⚠️ The morning report failed ({escape(detail[:300])}); trying again in "
                           f"{REPORT_RETRY / 60:.0f} minutes.")
