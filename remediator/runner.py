"""The runner: due actions from the ledger → playbooks → outcomes (ledger, operations log, metrics, notices).

One action at a time per bot, different bots in parallel in a worker pool. An action interrupted by a
crash of the remediator is requeued when the runner starts.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from concurrent.futures import Executor
from typing import Callable

from botwatch.core.checks import bot_api, check_alive
from pathlib import Path

from botwatch.core.config import Config
from remediator import faults
from remediator.ledger import Action, Ledger
from remediator.metrics import Metrics
from remediator.mirror import mirror_path
from remediator.notifier import Notifier
from remediator.opslog import OperationsLog
from remediator.playbooks import PLAYBOOKS, Context, Result

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 120


class Runner:
    def __init__(self, config: Config, ledger: Ledger, opslog: OperationsLog, metrics: Metrics, notifier: Notifier,
                 runtimes: dict, pool: Executor, clock: Callable[[], float], sleep: Callable[[float], None],
                 restore: Callable | None = None, on_done: Callable[[], None] = lambda: None,
                 mirror_dir: Path | None = None, learned: dict[str, str] | None = None):
        self.config = config
        self.ledger = ledger
        self.opslog = opslog
        self.metrics = metrics
        self.notifier = notifier
        self.runtimes = runtimes
        self.pool = pool
        self.clock = clock
        self.sleep = sleep
        self.restore = restore
        self.on_done = on_done
        self.mirror_dir = mirror_dir
        self.learned = learned if learned is not None else {}    # bot -> exchange, as its own API said
        self.apis = {bot.name: api for bot in config.bots if (api := bot_api(bot)) is not None}   # one session each
        self._busy: set[str] = set()          # bots with a playbook running
        self._idle = threading.Condition()    # guards _busy; notified when a bot's run ends
        requeued = self.ledger.requeue_interrupted(self.clock())
        if requeued:
            log.warning("%d action(s) were interrupted by a restart; running them again", requeued)

    def dispatch_due(self, inline: bool = False) -> list[Action]:
        """Start every due action (one per bot); `inline` runs them in this thread (tests)."""
        with self._idle:
            due = self.ledger.due(self.clock(), self._busy)
            for action in due:
                self._busy.add(action.bot)
                self.ledger.start(action.id, self.clock())
        for action in due:
            if inline:
                self._run(action)
            else:
                self.pool.submit(self._run, action)
        return due

    def run_now(self, bot: str, playbook: str, reason: str = "by hand") -> Action:
        """Run a playbook for a bot in this thread once no other run holds the bot; the finished action."""
        action_id = self.ledger.schedule(bot, playbook, self.clock(), alertname=None, detail=reason)
        with self._idle:
            self._idle.wait_for(lambda: bot not in self._busy)
            self._busy.add(bot)
            self.ledger.start(action_id, self.clock())
        self._run(self.ledger.action(action_id))
        return self.ledger.action(action_id)

    def _run(self, action: Action) -> None:
        faults.reached(f"{action.playbook}-started")
        started = self.clock()
        wall = time.monotonic()
        try:
            result = self._playbook_result(action)
        finally:
            with self._idle:
                self._busy.discard(action.bot)
                self._idle.notify_all()
        if result.outcome == "deferred":
            self.ledger.defer(action.id, result.run_at, result.detail)
            log.info("%s: %s deferred: %s", action.bot, action.playbook, result.detail)
        else:
            self._finish(action, result, started, time.monotonic() - wall)
        self.on_done()

    def _playbook_result(self, action: Action) -> Result:
        bot = self.config.bot(action.bot)
        runtime = self.runtimes[action.bot]
        ctx = Context(self.config, bot, action, runtime, self.ledger, self.clock, self.sleep,
                      check_alive=lambda: check_alive(bot, runtime.status),
                      run_command=self.run_command, restore=self.restore, api=self.apis.get(action.bot),
                      mirror=mirror_path(self.mirror_dir, bot) if self.mirror_dir and bot.preset else None,
                      extra={"exchange": bot.exchange_name(self.learned)})
        try:
            result = PLAYBOOKS[action.playbook].run(ctx)
        except Exception as err:  # a bug or an unexpected failure: recorded, never raised to the webhook
            log.exception("%s: %s playbook raised", action.bot, action.playbook)
            result = Result("failed", f"playbook error: {type(err).__name__}: {err}")
        if ctx.extra.get("restarted"):
            self.metrics.restarts.labels(action.bot).inc()
        return result

    def _finish(self, action: Action, result: Result, started: float, duration: float) -> None:
        now = self.clock()
        self.ledger.finish(action.id, now, result.outcome, result.detail, result.log_excerpt)
        faults.reached(f"{action.playbook}-finished")
        self.opslog.append(started, action.bot, action.alertname, action.playbook, result.outcome, duration,
                           result.detail, result.log_excerpt)
        self.metrics.remediations.labels(action.bot, action.playbook, result.outcome).inc()
        self.metrics.duration.labels(action.playbook).observe(duration)
        log.info("%s: %s %s: %s", action.bot, action.playbook, result.outcome, result.detail)
        if result.notice:
            self.notifier.send(result.notice)
        if result.retry and self.ledger.incident_open(action.fingerprint, action.starts_at):
            # the backoff check at the start of the playbook decides when it really runs
            self.ledger.schedule(action.bot, action.playbook, now, action.alertname, action.fingerprint,
                                 action.starts_at, "retry after a failed attempt")

    def run_command(self, argv: list[str]) -> tuple[int, str]:
        """Run a command from the config (argv, no shell); its exit code and the tail of its output."""
        cwd = self.config.path.parent if self.config.path else None
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=cwd,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            return -1, str(err)
        return result.returncode, (result.stdout + result.stderr).strip()[-1000:]
