"""The runner: claimed jobs → playbooks → outcomes.

One job at a time per bot, different bots in parallel in a worker pool. Where the jobs come from and
where their ends go is a job source: `LocalJobs`, the ledger itself (the remediator running the jobs of
its own host's bots), or an agent's connection to the central remediator (agent/jobs.py). Either way a
job is claimed with a lease, the lease is renewed while the playbook runs, and the end is recorded only
under the claim's fencing token (its attempt): a worker whose lease passed cannot overwrite the run of
whoever claimed the job after it.

`Outcomes` is where every job's end is recorded, whoever ran it: the ledger, the operations log, the
metrics, the notice, and the retry.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Callable, Protocol

from botwatch.core.checks import bot_api, check_alive
from botwatch.core.config import LOCAL_HOST, Config
from botwatch.remediator import faults
from botwatch.remediator.ledger import Action, Ledger
from botwatch.remediator.metrics import Metrics
from botwatch.remediator.restore.kinds import mirrored
from botwatch.remediator.restore.mirror import mirror_path
from botwatch.remediator.tell.notifier import Notifier
from botwatch.remediator.tell.opslog import OperationsLog
from botwatch.remediator.playbooks import PLAYBOOKS, Context, Result
from botwatch.remediator.playbooks.base import LedgerView

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 120


def deadline_for(config: Config, host: str, run_at: float) -> float | None:
    """A job for another host's agent must start by then or expire; the remediator's own never do."""
    return None if host == LOCAL_HOST else run_at + config.remediation.job_deadline


class Outcomes:
    """Records the end of a job (fenced by its claim), and what follows from it."""

    def __init__(self, config: Config, ledger: Ledger, opslog: OperationsLog, metrics: Metrics, notifier: Notifier,
                 clock: Callable[[], float]):
        self.config, self.ledger, self.opslog, self.metrics, self.notifier = config, ledger, opslog, metrics, notifier
        self.clock = clock

    def finished(self, action: Action, result: Result, started: float, duration: float, restarted: bool) -> bool:
        """Record the end of the claim `action.attempt`; False (nothing recorded) when the job was claimed
        again since, or is over."""
        now = self.clock()
        if not self.ledger.finish(action.id, now, result.outcome, result.detail, result.log_excerpt,
                                  attempt=action.attempt):
            self.late(action, result, started, duration, restarted, now)
            return False
        faults.reached(f"{action.playbook}-finished")
        self.opslog.append(started, action.bot, action.alertname, action.playbook, result.outcome, duration,
                           result.detail, result.log_excerpt)
        self.metrics.remediations.labels(action.bot, action.playbook, result.outcome).inc()
        self.metrics.duration.labels(action.playbook).observe(duration)
        if restarted:
            self.metrics.restarts.labels(action.bot).inc()
        log.info("%s: %s %s: %s", action.bot, action.playbook, result.outcome, result.detail)
        if result.notice:
            self.notifier.send(result.notice)
        if result.retry and self.ledger.incident_open(action.fingerprint, action.starts_at):
            # the backoff check at the start of the playbook decides when it really runs
            self.ledger.schedule(action.bot, action.playbook, now, action.alertname, action.fingerprint,
                                 action.starts_at, "retry after a failed attempt", host=action.host,
                                 deadline=deadline_for(self.config, action.host, now))
        return True

    def late(self, action: Action, result: Result, started: float, duration: float, restarted: bool,
             now: float) -> None:
        """A run that ended after its claim lapsed (its worker froze past the lease; the job expired or was
        claimed again): its end is refused, fencing the job, but what it did happened, so it is recorded
        once as its own done row, "done after its lease", with its line, metrics and notice; no retry."""
        if result.outcome == "skipped" and not restarted:
            return                           # nothing was done
        key = f"late-end:{action.id}:{action.attempt}"
        with self.ledger.transaction():
            now_is = self.ledger.find(action.id)
            if now_is is not None and now_is.state == "done" and now_is.attempt == action.attempt \
                    and now_is.outcome != "expired":
                return                       # this claim's own end, reported again: recorded already
            if self.ledger.get(key) is not None:
                return                       # the same late end reported again
            self.ledger.put(key, now)
            detail = (f"done after its lease (job {action.id}, attempt {action.attempt}; the job had been "
                      f"claimed again or had expired): {result.detail}")
            self.ledger.record(action.bot, action.playbook, now, result.outcome, detail, host=action.host)
        log.warning("%s: %s (job %d, attempt %d) ended %s after its claim lapsed: recorded as done after its lease",
                    action.bot, action.playbook, action.id, action.attempt, result.outcome)
        self.opslog.append(started, action.bot, action.alertname, action.playbook, result.outcome, duration,
                           detail, result.log_excerpt)
        self.metrics.remediations.labels(action.bot, action.playbook, result.outcome).inc()
        if restarted:
            self.metrics.restarts.labels(action.bot).inc()
        if result.notice:
            self.notifier.send(result.notice)

    def deferred(self, action: Action, result: Result) -> bool:
        ok = self.ledger.defer(action.id, result.run_at, result.detail, attempt=action.attempt,
                               ttl=self.config.remediation.job_deadline)
        if ok:
            log.info("%s: %s deferred: %s", action.bot, action.playbook, result.detail)
        return ok


class JobSource(Protocol):
    """Where the runner's jobs come from and their ends go: LocalJobs (the ledger) or an agent's RemoteJobs
    (the central remediator). Every end is recorded under the claim's attempt, or refused (False)."""

    lease: float                                        # seconds a claim lasts unless renewed

    def claim(self, now: float, busy: set[str]) -> list[Action]: ...

    def may_run(self, action: Action) -> bool: ...

    def renew(self, action: Action, now: float) -> bool: ...

    def finished(self, action: Action, result: Result, started: float, duration: float, restarted: bool) -> bool: ...

    def deferred(self, action: Action, result: Result) -> bool: ...

    def ledger_for(self, action: Action) -> LedgerView: ...


class LocalJobs:
    """The jobs of this host's bots, straight from the ledger."""

    def __init__(self, ledger: Ledger, outcomes: Outcomes, host: str = LOCAL_HOST, worker: str = "remediator"):
        self.ledger, self.outcomes, self.host, self.worker = ledger, outcomes, host, worker

    @property
    def lease(self) -> float:
        return self.outcomes.config.remediation.job_lease

    def claim(self, now: float, busy: set[str]) -> list[Action]:
        return self.ledger.claim(self.host, self.worker, now, self.lease, busy)

    def renew(self, action: Action, now: float) -> bool:
        return self.ledger.renew(action.id, action.attempt, now + self.lease)

    def finished(self, action: Action, result: Result, started: float, duration: float, restarted: bool) -> bool:
        return self.outcomes.finished(action, result, started, duration, restarted)

    def deferred(self, action: Action, result: Result) -> bool:
        return self.outcomes.deferred(action, result)

    def ledger_for(self, action: Action) -> Ledger:
        return self.ledger

    def may_run(self, action: Action) -> bool:
        return True


class Runner:
    def __init__(self, config: Config, jobs: JobSource, runtimes: dict, pool: Executor, clock: Callable[[], float],
                 sleep: Callable[[float], None], restore: Callable | None = None,
                 on_done: Callable[[], None] = lambda: None, mirror_dir: Path | None = None,
                 learned: dict[str, str] | None = None, intent: Callable[[Context], Result | None] | None = None):
        self.config = config
        # asked before every playbook: `held` when the bot is paused or stopped by its operator (remediator.intent)
        self.intent = intent or (lambda ctx: None)
        self.after: Callable[[str], None] = lambda bot: None     # told of each bot whose playbook run ended
        self.jobs = jobs
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
        self._held: dict[int, Action] = {}    # the claims being run, by job id (their leases are renewed)
        self._renewed = 0.0
        self._idle = threading.Condition()    # guards _busy and _held; notified when a bot's run ends

    def dispatch_due(self, inline: bool = False) -> list[Action]:
        """Claim every due job (one per bot) and start it; `inline` runs them in this thread (tests)."""
        self.renew_leases()
        with self._idle:
            claimed = self.jobs.claim(self.clock(), set(self._busy))
            due = [action for action in claimed if action.bot in self.runtimes]
            for action in due:
                self._busy.add(action.bot)
                self._held[action.id] = action
        for action in claimed:
            if action.bot not in self.runtimes:     # the central config names a bot this host's does not
                self.jobs.finished(action, Result("failed", f"no bot {action.bot!r} in the config on this host: "
                                                            "give every host the same config"), self.clock(), 0.0, False)
        for action in due:
            if inline:
                self._run(action)
            else:
                self.pool.submit(self._run, action)
        return due

    def renew_leases(self) -> None:
        """Keep the leases of the jobs running here (every third of a lease)."""
        now = self.clock()
        if now - self._renewed < self.jobs.lease / 3:
            return
        self._renewed = now
        with self._idle:
            held = list(self._held.values())
        for action in held:
            try:
                if not self.jobs.renew(action, now):
                    log.warning("%s: lost the lease of %s (job %d): its end will not be recorded",
                                action.bot, action.playbook, action.id)
            except Exception as err:  # the ledger or the remediator unreachable: the lease may run out
                log.warning("%s: can't renew the lease of job %d: %s", action.bot, action.id, err)

    def run_now(self, bot: str, playbook: str, reason: str = "by hand") -> Action:
        """Run a playbook for a bot in this thread once no other run holds the bot; the finished action."""
        ledger = self.jobs.ledger
        action_id = ledger.schedule(bot, playbook, self.clock(), alertname=None, detail=reason,
                                    host=self.config.bot(bot).host)
        with self._idle:
            self._idle.wait_for(lambda: bot not in self._busy)
            self._busy.add(bot)
            action = ledger.start(action_id, self.clock(), self.jobs.worker)
        self._run(action)
        return ledger.action(action_id)

    def _run(self, action: Action) -> None:
        if not self.jobs.may_run(action):       # waited here past its lease or deadline: someone else's now
            log.warning("%s: %s (job %d) not started: its lease or deadline passed while it waited",
                        action.bot, action.playbook, action.id)
            self._release(action)
            return
        faults.reached(f"{action.playbook}-started")
        started = self.clock()
        wall = time.monotonic()
        try:
            result, restarted = self._playbook_result(action)
        finally:
            self._release(action)
        try:
            if result.outcome == "deferred":
                self.jobs.deferred(action, result)
            else:
                self.jobs.finished(action, result, started, time.monotonic() - wall, restarted)
        except Exception:  # the ledger unreachable: the lease runs out and the job is claimed again
            log.exception("%s: could not record the end of %s (job %d)", action.bot, action.playbook, action.id)
        try:
            self.after(action.bot)
        except Exception:  # a look after the run is a courtesy: the next round looks anyway
            log.exception("%s: the look after %s failed", action.bot, action.playbook)
        self.on_done()

    def busy(self) -> set[str]:
        """The bots a playbook runs for now."""
        with self._idle:
            return set(self._busy)

    def _release(self, action: Action) -> None:
        with self._idle:
            self._busy.discard(action.bot)
            self._held.pop(action.id, None)
            self._idle.notify_all()

    def _playbook_result(self, action: Action) -> tuple[Result, bool]:
        bot = self.config.bot(action.bot)
        runtime = self.runtimes[action.bot]
        ctx = Context(self.config, bot, action, runtime, self.jobs.ledger_for(action), self.clock, self.sleep,
                      check_alive=lambda: check_alive(bot, runtime.status),
                      run_command=self.run_command, restore=self.restore, api=self.apis.get(action.bot),
                      mirror=mirror_path(self.mirror_dir, bot) if self.mirror_dir and mirrored(bot) else None,
                      extra={"exchange": bot.exchange_name(self.learned)})
        try:
            result = self.intent(ctx) or PLAYBOOKS[action.playbook].run(ctx)
        except Exception as err:  # a bug or an unexpected failure: recorded, never raised to the webhook
            log.exception("%s: %s playbook raised", action.bot, action.playbook)
            done = "the bot was restarted, then " if ctx.extra.get("restarted") else ""
            result = Result("failed", f"{done}playbook error: {type(err).__name__}: {err}")
        return result, bool(ctx.extra.get("restarted"))

    def run_command(self, argv: list[str]) -> tuple[int, str]:
        """Run a command from the config (argv, no shell); its exit code and the tail of its output."""
        cwd = self.config.path.parent if self.config.path else None
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=cwd,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            return -1, str(err)
        return result.returncode, (result.stdout + result.stderr).strip()[-1000:]
