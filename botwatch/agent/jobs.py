"""The agent's job source for the runner: jobs claimed from the central remediator, their leases renewed,
their ends reported under the claim's fencing token; and the ledger a playbook sees, through the same
claim."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from botwatch.agent.client import Refused, RemediatorClient, Unreachable
from botwatch import __version__
from botwatch.remediator.ledger import Action, BotState
from botwatch.remediator.playbooks import Result

log = logging.getLogger(__name__)

MAX_PENDING = 1000        # ends not yet reported (the remediator unreachable) kept for the next poll


class RemoteJobs:
    def __init__(self, client: RemediatorClient, host: str, address: str, worker: str,
                 clock: Callable[[], float] = time.time):
        self.client, self.host, self.address, self.worker, self.clock = client, host, address, worker, clock
        self.lease = 30.0
        self.pending: list[tuple[str, dict]] = []     # reports to send again: (path, body), oldest first
        self._pending = threading.Lock()              # playbook and backup threads add, the poll sends
        self.last_seen: float | None = None           # when a remediator last answered a poll
        self.on_paused: Callable[[dict[str, str]], None] = lambda paused: None   # bot -> reason, each poll
        self.up_bots: Callable[[], list[str]] = list     # the bots this host's checks found up, told each poll

    def claim(self, now: float, busy: set[str]) -> list[Action]:
        """The heartbeat: report what is pending, then get the jobs claimed for this host."""
        self._flush()
        answer = self.client.post("/agent/poll", {"host": self.host, "address": self.address, "worker": self.worker,
                                                  "version": __version__, "busy": sorted(busy),
                                                  "up": sorted(self.up_bots())})
        self.last_seen = self.clock()
        self.lease = float(answer.get("lease") or self.lease)
        if isinstance(answer.get("paused"), dict):
            self.on_paused(answer["paused"])
        local = self.clock()
        jobs = []
        for job in answer.get("jobs", []):
            lease, deadline = job.pop("lease"), job.pop("deadline_in")
            jobs.append(Action(**job, outcome=None, run_at=local, started_at=local, finished_at=None,
                               log_excerpt=None, lease_until=local + lease if lease is not None else None,
                               deadline=local + deadline if deadline is not None else None, worker=self.worker))
        return jobs

    def may_run(self, action: Action) -> bool:
        """Never start a job whose lease ran out or whose deadline passed while it waited here."""
        now = self.clock()
        return (action.lease_until is None or now < action.lease_until) and (
            action.deadline is None or now < action.deadline)

    def renew(self, action: Action, now: float) -> bool:
        try:
            self.client.post(f"/agent/jobs/{action.id}/renew", self._claim(action))
        except Refused:
            return False
        return True

    def finished(self, action: Action, result: Result, started: float, duration: float, restarted: bool) -> bool:
        return self._report(action, {"outcome": result.outcome, "detail": result.detail,
                                     "log_excerpt": result.log_excerpt, "duration": duration, "restarted": restarted,
                                     "retry": result.retry, "notice": result.notice})

    def deferred(self, action: Action, result: Result) -> bool:
        return self._report(action, {"outcome": "deferred", "detail": result.detail,
                                     "after": max(0.0, result.run_at - self.clock())})

    def ledger_for(self, action: Action) -> "RemoteLedger":
        return RemoteLedger(self.client, action, self._claim(action))

    def _claim(self, action: Action) -> dict:
        return {"host": self.host, "attempt": action.attempt}

    def backed_up(self, result, duration: float) -> None:
        """Tell the remediator of a backup made here (PeriodicWork's on_backup)."""
        self.send("/agent/backups", {"host": self.host, "bot": result.bot, "outcome": result.outcome,
                                     "detail": result.detail, "duration": duration,
                                     "created": result.manifest.created if result.manifest else None},
                  f"{result.bot}: backup")

    def _report(self, action: Action, body: dict) -> bool:
        return self.send(f"/agent/jobs/{action.id}/finish", {**self._claim(action), **body},
                         f"{action.bot}: the end of {action.playbook} (job {action.id})")

    def send(self, path: str, body: dict, what: str) -> bool:
        """Report something to a remediator; kept for the next poll while none answers. False unless taken."""
        try:
            self.client.post(path, body)
        except Refused as err:
            log.warning("%s was refused: %s", what, err)
            return False
        except Unreachable as err:
            log.warning("%s can't be reported yet (%s): kept for the next poll", what, err)
            with self._pending:
                self.pending = (self.pending + [(path, body)])[-MAX_PENDING:]
            return False
        return True

    def _flush(self) -> None:
        while True:
            with self._pending:
                if not self.pending:
                    return
                oldest = self.pending[0]
            try:
                self.client.post(*oldest)
            except Refused as err:
                log.warning("a late report (%s) was refused: %s", oldest[0], err)
            with self._pending:          # Unreachable propagates: kept, and the poll fails too
                if self.pending and self.pending[0] is oldest:
                    self.pending.pop(0)


class RemoteLedger:
    """What a playbook reads and writes in the central ledger, fenced by its job's claim: a write from a
    run whose lease passed is refused (the playbook then fails, and its end is refused too)."""

    def __init__(self, client: RemediatorClient, action: Action, claim: dict):
        self.client, self.action, self.claim = client, action, claim

    def _call(self, op: str, **fields):
        return self.client.post(f"/agent/jobs/{self.action.id}/ledger", {**self.claim, "op": op, **fields})["value"]

    def bot_state(self, bot: str) -> BotState:
        value = self._call("bot_state")
        return BotState(bot, value["attempts"], value["last_restart_at"], value["healthy_since"],
                        bool(value["circuit_open"]), bool(value["memory_raised"]), value.get("last_start_at"))

    def update_bot(self, bot: str, **fields) -> None:
        self._call("update_bot", fields=fields)

    def get(self, key: str, default=None):
        value = self._call("get", key=key)
        return default if value is None else value

    def put(self, key: str, value) -> None:
        self._call("put", key=key, value=value)
