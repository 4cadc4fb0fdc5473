"""The remediator's core: takes alerts, decides once per incident, runs playbooks in the background.

Webhook deliveries only record and schedule (durably, in the ledger) and return at once; a scheduler
thread runs due actions in a worker pool, one at a time per bot, different bots in parallel.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timezone
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from botwatch.core.checks import check_alive
from botwatch.core.config import Config
from remediator.backup import BackupResult, backup_bot, prune, store_for
from remediator.ledger import Action, Ledger
from remediator.metrics import Metrics
from remediator.notifier import Notifier, escape
from remediator.opslog import OperationsLog
from remediator.payload import Alert
from remediator.playbooks import BY_ALERT, Context, Result
from remediator.playbooks.api_errors import api_auth_playbook, api_rate_limit_playbook
from remediator.playbooks.restart import restart_playbook
from remediator.playbooks.restore import restore_playbook
from remediator import scheduler
from remediator.runtimes import runtime_for

log = logging.getLogger(__name__)

PLAYBOOKS = {"restart": restart_playbook, "restore": restore_playbook,
             "api_auth": api_auth_playbook, "api_rate_limit": api_rate_limit_playbook}
COMMAND_TIMEOUT = 120


class Remediator:
    def __init__(self, config: Config, data_dir: Path, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, runtime_factory: Callable | None = None,
                 notifier: Notifier | None = None, restore: Callable | None = None, metrics: Metrics | None = None,
                 workers: int = 8):
        self.config = config
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.sleep = sleep
        self.ledger = Ledger(self.data_dir / "ledger.sqlite3")
        self.opslog = OperationsLog(self.data_dir / "memory" / "bot-operations.md")
        self.metrics = metrics or Metrics([bot.name for bot in config.bots], self.ledger)
        self.notifier = notifier or Notifier(config.telegram, outbox=self.data_dir / "telegram-outbox.jsonl")
        self.notifier.on_outcome = lambda outcome: self.metrics.notifications.labels(outcome).inc()
        factory = runtime_factory or (lambda bot: runtime_for(bot, self.data_dir / "bot-output"))
        self.runtimes = {bot.name: factory(bot) for bot in config.bots}
        self.restore = restore
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="playbook")
        self._thread: threading.Thread | None = None
        self._backing_up = threading.Lock()
        self._reporting = threading.Lock()
        requeued = self.ledger.requeue_interrupted(self.clock())
        if requeued:
            log.warning("%d action(s) were interrupted by a restart; running them again", requeued)

    # -- taking alerts ---------------------------------------------------------------------------------

    def handle(self, alerts: list[Alert]) -> dict[str, int]:
        """Record the alerts and schedule what they ask for; returns counts. Never runs a playbook itself."""
        counts = {"scheduled": 0, "duplicate": 0, "resolved": 0, "ignored": 0, "noted": 0}
        now = self.clock()
        for alert in alerts:
            counts[self._take(alert, now)] += 1
        if counts["scheduled"]:
            self._wake.set()
        return counts

    def _take(self, alert: Alert, now: float) -> str:
        bot = self.config.bot(alert.bot) if alert.bot is not None else None
        playbook = BY_ALERT.get(alert.alertname)
        if bot is None:
            log.warning("alert %.80r for unknown bot %.80r ignored", alert.alertname, alert.bot)
            self.ledger.record_delivery(now, alert.alertname[:200], (alert.bot or "")[:200], alert.status,
                                        alert.fingerprint, alert.starts_at, "unknown bot: ignored")
            return "ignored"
        if alert.status == "resolved":
            self._resolved(alert, bot.name, playbook, now)
            return "resolved"
        if playbook is None:
            self.ledger.record_delivery(now, alert.alertname, bot.name, alert.status, alert.fingerprint,
                                        alert.starts_at, "no playbook: noted")
            return "noted"
        if not self.ledger.open_incident(alert.fingerprint, alert.starts_at, alert.alertname, bot.name, now):
            self.ledger.record_delivery(now, alert.alertname, bot.name, alert.status, alert.fingerprint,
                                        alert.starts_at, "duplicate: already acted on")
            return "duplicate"
        self._new_incident(bot.name, playbook, now)
        self.ledger.schedule(bot.name, playbook, now, alert.alertname, alert.fingerprint, alert.starts_at)
        self.ledger.record_delivery(now, alert.alertname, bot.name, alert.status, alert.fingerprint,
                                    alert.starts_at, f"scheduled {playbook}")
        log.info("%s: %s firing: %s scheduled", bot.name, alert.alertname, playbook)
        return "scheduled"

    def _new_incident(self, bot: str, playbook: str, now: float) -> None:
        if playbook != "restart":
            return
        state = self.ledger.bot_state(bot)
        reset_after = self.config.remediation.healthy_reset_after
        if state.attempts and state.healthy_since is not None and now - state.healthy_since >= reset_after:
            log.info("%s: healthy for %.0fs since the last restart; restart count reset", bot, now - state.healthy_since)
            self.ledger.update_bot(bot, attempts=0, memory_raised=0)

    def _resolved(self, alert: Alert, bot: str, playbook: str | None, now: float) -> None:
        self.ledger.resolve_incident(alert.fingerprint, alert.starts_at, now)
        note = "resolved"
        if playbook:
            cancelled = self.ledger.cancel_scheduled(bot, playbook, now, f"{alert.alertname} resolved")
            note += f"; {cancelled} pending {playbook} cancelled" if cancelled else ""
        if playbook == "restart":
            state = self.ledger.bot_state(bot)
            self.ledger.update_bot(bot, healthy_since=state.healthy_since or now, circuit_open=0)
        self.ledger.record_delivery(now, alert.alertname, bot, "resolved", alert.fingerprint, alert.starts_at, note)

    def reset(self, bot: str) -> bool:
        """An operator's reset: close the circuit and forget past attempts."""
        if self.config.bot(bot) is None:
            return False
        self.ledger.update_bot(bot, attempts=0, circuit_open=0, memory_raised=0)
        self.opslog.append(self.clock(), bot, None, "reset", "success", 0.0, "operator reset: circuit closed")
        self._wake.set()
        return True

    # -- running actions -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._schedule, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            self.dispatch_due()
            self._maybe_backup()
            self._maybe_report()
            next_at = self.ledger.next_run_at()
            timeout = 1.0 if next_at is None else max(0.05, min(1.0, next_at - self.clock()))
            self._wake.wait(timeout)
            self._wake.clear()

    def run_now(self, bot: str, playbook: str, reason: str = "by hand") -> Action:
        """Run a playbook for a bot in this thread (the `botwatch restore` command); returns the finished action."""
        action_id = self.ledger.schedule(bot, playbook, self.clock(), alertname=None, detail=reason)
        while True:
            with self._lock:
                busy = bot in self._busy
                if not busy:
                    self._busy.add(bot)
                    self.ledger.start(action_id, self.clock())
            if not busy:
                break
            time.sleep(0.2)
        self._run(self.ledger.action(action_id))
        return self.ledger.action(action_id)

    # -- the daily report ------------------------------------------------------------------------------

    def _maybe_report(self) -> None:
        report = self.config.report
        if not report.enabled or self._reporting.locked():
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
        self._pool.submit(self.send_report)

    def _claim_report(self, key: str) -> bool:
        name = f"report-{key.replace(':', '')}"
        try:
            if self.config.backup.s3:
                from remediator.backup import S3Store
                s3 = self.config.backup.s3
                store = S3Store(s3.bucket, s3.prefix, s3.endpoint_url, s3.region)
                return scheduler.claim_s3(store.client, s3.bucket, f"{store.prefix}claims/{name}")
            return scheduler.claim(Path(self.config.backup.dir) / ".claims", name)
        except Exception as err:  # no shared place to claim in: better two reports than none
            log.warning("could not claim the report (%s); sending it anyway", err)
            return True

    def send_report(self) -> bool:
        """Build the report over `report.window` and send it (text, then the chart)."""
        from remediator.report import build_report
        with self._reporting:
            started = time.monotonic()
            result = build_report(self.config, self.config.report.prometheus_url, self.ledger,
                                  self.config.report.window, self.clock())
            ok = self.notifier.send(result.text)
            if result.chart:
                ok &= self.notifier.send_photo(result.chart, caption=escape(result.title), filename="report.png")
            outcome = "success" if ok else "failed"
            detail = "; ".join(result.unknown) or "sent"
            self.opslog.append(self.clock(), "all bots", None, "report", outcome, time.monotonic() - started, detail)
            log.info("daily report %s: %s", outcome, detail)
            return ok

    # -- backups ---------------------------------------------------------------------------------------

    def _maybe_backup(self) -> None:
        last = self.ledger.get("last_backup_run", 0.0)
        if self.clock() - last >= self.config.backup.interval and not self._backing_up.locked():
            self.ledger.put("last_backup_run", self.clock())
            self._pool.submit(self.backup)

    def backup(self, names: list[str] | None = None) -> list[BackupResult]:
        """Back up each (named) bot's valid trade file, prune old backups; recorded like any action."""
        with self._backing_up:
            try:
                store = store_for(self.config.backup)
            except Exception as err:  # boto3 could not even build a client (bad region, ...)
                store, store_error = None, f"backup store: {err}"
            results = []
            for bot in self.config.bots:
                if names and bot.name not in names:
                    continue
                started = time.monotonic()
                if store is None:
                    result = BackupResult(bot.name, "failed", store_error)
                else:
                    result = backup_bot(bot, store, self.clock)
                    if result.outcome == "success":
                        self._prune(bot.name, store)
                results.append(result)
                self._record_backup(result, time.monotonic() - started)
            failed = [r for r in results if r.outcome == "failed"]
            if failed:
                self.notify("💾 backup failed for " + ", ".join(f"<b>{escape(r.bot)}</b>: {escape(r.detail)}"
                                                                for r in failed))
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
        now = self.clock()
        action_id = self.ledger.schedule(result.bot, "backup", now, detail="backup")
        self.ledger.finish(action_id, now, result.outcome, result.detail)
        self.opslog.append(now, result.bot, None, "backup", result.outcome, duration, result.detail)
        self.metrics.backups.labels(result.bot, result.outcome).inc()
        if result.outcome == "success":
            self.metrics.last_backup.labels(result.bot).set(result.manifest.created)
        log.info("%s: backup %s: %s", result.bot, result.outcome, result.detail)

    def dispatch_due(self, inline: bool = False) -> list[Action]:
        """Start every due action (one per bot); `inline` runs them in this thread (tests)."""
        with self._lock:
            due = self.ledger.due(self.clock(), self._busy)
            for action in due:
                self._busy.add(action.bot)
                self.ledger.start(action.id, self.clock())
        for action in due:
            if inline:
                self._run(action)
            else:
                self._pool.submit(self._run, action)
        return due

    def _run(self, action: Action) -> None:
        started = self.clock()
        wall = time.monotonic()
        try:
            result = self._playbook_result(action)
        finally:
            with self._lock:
                self._busy.discard(action.bot)
        if result.outcome == "deferred":
            self.ledger.defer(action.id, result.run_at, result.detail)
            log.info("%s: %s deferred: %s", action.bot, action.playbook, result.detail)
        else:
            self._finish(action, result, started, time.monotonic() - wall)
        self._wake.set()

    def _playbook_result(self, action: Action) -> Result:
        bot = self.config.bot(action.bot)
        runtime = self.runtimes[action.bot]
        ctx = Context(self.config, bot, action, runtime, self.ledger, self.clock, self.sleep,
                      check_alive=lambda: check_alive(bot, runtime.status),
                      run_command=self.run_command, restore=self.restore)
        try:
            result = PLAYBOOKS[action.playbook](ctx)
        except Exception as err:  # a bug or an unexpected failure: recorded, never raised to the webhook
            log.exception("%s: %s playbook raised", action.bot, action.playbook)
            result = Result("failed", f"playbook error: {type(err).__name__}: {err}")
        if ctx.extra.get("restarted"):
            self.metrics.restarts.labels(action.bot).inc()
        return result

    def _finish(self, action: Action, result: Result, started: float, duration: float) -> None:
        now = self.clock()
        self.ledger.finish(action.id, now, result.outcome, result.detail, result.log_excerpt)
        self.opslog.append(started, action.bot, action.alertname, action.playbook, result.outcome, duration,
                           result.detail, result.log_excerpt)
        self.metrics.remediations.labels(action.bot, action.playbook, result.outcome).inc()
        self.metrics.duration.labels(action.playbook).observe(duration)
        log.info("%s: %s %s: %s", action.bot, action.playbook, result.outcome, result.detail)
        if result.notice:
            self.notify(result.notice)
        if result.retry and self.ledger.incident_open(action.fingerprint, action.starts_at):
            # the backoff check at the start of the playbook decides when it really runs
            self.ledger.schedule(action.bot, action.playbook, now, action.alertname, action.fingerprint,
                                 action.starts_at, "retry after a failed attempt")

    def notify(self, text: str) -> None:
        self.notifier.send(text)

    def run_command(self, argv: list[str]) -> tuple[int, str]:
        """Run a command from the config (argv, no shell); its exit code and the tail of its output."""
        cwd = self.config.path.parent if self.config.path else None
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=cwd,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            return -1, str(err)
        return result.returncode, (result.stdout + result.stderr).strip()[-1000:]
