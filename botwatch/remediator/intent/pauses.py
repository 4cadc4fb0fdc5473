"""Pause and resume: an Alertmanager silence plus a hold in the ledger, made and ended together.

Neither alone can let an action through: a silence keeps the alert from the remediator (and shows the
pause in Alertmanager, Prometheus' UI and Grafana), the hold makes every playbook refuse the bot (outcome
`held`) when an alert still arrives — a race with the silence, a webhook replayed by hand, an Alertmanager
that could not be reached. `sync()` (every few seconds, from the remediator's loop) ends a pause whose
time ran out or whose silence an operator expired in Alertmanager's UI, and makes the silence of a pause
whose Alertmanager was away when it began. A job queued for a bot that gets paused is cancelled, not run
later; when a pause ends the bot is looked at afresh by the normal path (its alerts, two failed checks).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from botwatch.core.config import Config
from botwatch.core.units import parse_duration
from botwatch.remediator.intent.silences import FOREVER, SilenceError, Silences
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.ledger.holds import Holds, Pause
from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.tell.opslog import OperationsLog

log = logging.getLogger(__name__)

SYNC_EVERY = 5.0
MATCH_ALL = {"name": "bot", "value": ".+", "isRegex": True, "isEqual": True}


class PauseError(ValueError):
    """A pause or resume that can't be done as asked; the message names what to fix (HTTP 400, exit 2)."""


@dataclass(frozen=True)
class Scope:
    """What a pause or resume covers: bots by name, one host's bots, or all."""

    bots: tuple[str, ...] = ()
    host: str | None = None
    all: bool = False

    def targets(self, together: bool = False) -> list[tuple[str, str]]:
        """(scope, target) of each pause it makes: one per bot, or with `together` one for all its bots."""
        if self.all:
            return [("all", "*")]
        if self.host:
            return [("host", self.host)]
        if together:
            return [("bot", ",".join(self.bots))]
        return [("bot", name) for name in self.bots]


def parse_scope(config: Config, bots, host, everything) -> Scope:
    bots = list(bots or [])
    given = sum(bool(x) for x in (bots, host, everything))
    if given != 1:
        raise PauseError("name the bots, or give --host H, or --all (exactly one of them)")
    if not all(isinstance(name, str) for name in bots):
        raise PauseError("bots: a list of bot names")
    unknown = [name for name in bots if config.bot(name) is None]
    if unknown:
        raise PauseError(f"no bot {', '.join(map(repr, unknown))} in the config")
    if host and host not in config.hosts:
        raise PauseError(f"no host {host!r} in the config (its hosts: {', '.join(config.hosts)})")
    return Scope(tuple(dict.fromkeys(bots)), host or None, bool(everything))


def parse_until(now: float, duration: str | None, until: str | None) -> float | None:
    """When a pause ends: now + `duration` ("2h"), at `until` (ISO 8601, UTC without an offset), or None
    (until resumed)."""
    if duration and until:
        raise PauseError("give --for or --until, not both")
    if duration:
        try:
            seconds = parse_duration(duration)
        except ValueError as err:
            raise PauseError(f"--for: {err}") from None
        if seconds <= 0:
            raise PauseError("--for: must be more than 0s")
        return now + seconds
    if until:
        try:
            at = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            raise PauseError(f"--until: {until!r} is not a time like 2026-12-02T18:00 or 2026-12-02T18:00+01:00") from None
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        if at.timestamp() <= now:
            raise PauseError(f"--until: {until} is in the past")
        return at.timestamp()
    return None


def hhmm(ts: float | None) -> str:
    return "until resumed" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class Pauses:
    def __init__(self, config: Config, ledger: Ledger, opslog: OperationsLog, notify: Callable[[str], object],
                 clock: Callable[[], float], silences: Silences | None = None,
                 on_resumed: Callable[[Pause], None] = lambda pause: None):
        self.config, self.ledger, self.opslog, self.notify, self.clock = config, ledger, opslog, notify, clock
        self.holds = Holds(ledger)
        self.silences = silences or Silences(config.remediation.alertmanager_urls)
        self.on_resumed = on_resumed      # a deliberate stop handed back: start the bot (intent.stops)
        self._synced = 0.0
        self._lock = threading.Lock()

    # -- what holds a bot -----------------------------------------------------------------------------------

    def holding(self, bot: str, now: float | None = None) -> Pause | None:
        found = self.config.bot(bot)
        return self.holds.holding(bot, found.host if found else "", self.clock() if now is None else now)

    def active(self) -> list[Pause]:
        return self.holds.active(self.clock())

    def covered(self, pause: Pause) -> list[str]:
        return [bot.name for bot in self.config.bots if pause.covers(bot.name, bot.host)]

    # -- pause and resume ---------------------------------------------------------------------------------

    def pause(self, scope: Scope, until: float | None, comment: str, who: str, reason: str = "pause",
              occurrence: str | None = None, since: float | None = None,
              notice: Callable[[Pause], str] | None = None, together: bool = False) -> list[Pause]:
        """Hold what `scope` covers until `until` (None: until resumed): the hold first, then its silence
        (an Alertmanager away leaves the hold, and `sync` makes the silence later)."""
        if not comment.strip():
            raise PauseError("--reason: say why (it is the silence's comment and what the status page shows)")
        now = self.clock()
        made = []
        for kind, target in scope.targets(together):
            with self._lock:           # the upkeep's sync must not find it without its silence and make one too
                pause = self.holds.add(kind, target, reason, comment.strip(), who, since or now, until, occurrence)
                if pause is None:
                    continue           # this occurrence was made already (by the other remediator)
                pause = self._silence(pause)
            made.append(pause)
            bots = self.covered(pause)
            cancelled = sum(self.ledger.cancel_queued(bot, now, f"cancelled: {self.says(pause)}") for bot in bots)
            detail = f"{self.says(pause)}" + (f"; {cancelled} queued job(s) cancelled" if cancelled else "")
            self._record(pause, "pause", detail, notice(pause) if notice else None)
            log.info("%s %s: %s", kind, target, detail)
        return made

    def resume(self, scope: Scope, who: str) -> list[Pause]:
        """End the pauses `scope` names (its bots' own, its host's, or all), deliberate stops included; each
        bot is then looked at afresh by the normal path. A bot held by a pause that covers other bots too
        (its host's, all, a maintenance window of several) is not resumed alone: PauseError says which."""
        now = self.clock()
        ended, wider = [], []
        wanted = set(scope.bots)
        for pause in self.holds.open():
            covered = set(self.covered(pause))
            if scope.all:
                whole = True
            elif scope.host:
                on_host = {bot.name for bot in self.config.bots if bot.host == scope.host}
                whole = (pause.scope == "host" and pause.target == scope.host) or (
                    pause.scope == "bot" and bool(covered) and covered <= on_host)
            else:
                whole = pause.scope == "bot" and set(pause.bots) <= wanted
                if not whole and covered & wanted:
                    wider.append(pause)
            if whole and self.end(pause, now, f"resumed by {who}"):
                ended.append(pause)
        if wider and not ended:
            pause = wider[0]
            raise PauseError(f"{', '.join(sorted(set(self.covered(pause)) & wanted))}: held by the "
                             f"{self.reason_words(pause)} of {self.names(pause)}, not by a pause of its own: resume "
                             + ("--all" if pause.scope == "all" else f"--host {pause.target}" if pause.scope == "host"
                                else " ".join(pause.bots)) + " to end it")
        return ended

    def end(self, pause: Pause, now: float, why: str) -> bool:
        with self._lock:
            if not self.holds.end(pause.id, now, why):
                return False
        if pause.silence_id:
            try:
                self.silences.expire(pause.silence_id)
            except SilenceError as err:
                log.warning("pause %d: could not expire silence %s: %s", pause.id, pause.silence_id, err)
        self._record(pause, "resume", f"{self.names(pause)}: {self.reason_words(pause)} ended ({why}); "
                                      "botwatch watches it again")
        if pause.reason == "operator_stop" and why.startswith("resumed by"):
            self.on_resumed(pause)
        return True

    # -- upkeep -----------------------------------------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """End what ran out or whose silence was expired by hand; make silences Alertmanager missed."""
        now = self.clock()
        if not force and now - self._synced < SYNC_EVERY:
            return
        self._synced = now
        for pause in self.holds.open():
            if pause.until is not None and now >= pause.until:
                self.end(pause, now, "its time ran out" if pause.reason == "pause" else "the window closed")
            elif pause.reason == "operator_stop":
                continue
            elif pause.silence_id is None:
                with self._lock:       # made meanwhile by pause(), here or (found by its mark) by the other replica
                    fresh = self.holds.find(pause.id)
                    if fresh is not None and fresh.silence_id is None and fresh.ended_at is None:
                        self._silence(fresh, look_first=True)
            else:
                try:
                    state = self.silences.state(pause.silence_id)
                except SilenceError:
                    continue                # Alertmanager away: the hold stands
                if state == "expired":      # expired by hand: the operator ended it there
                    self.end(pause, now, "its silence was expired in Alertmanager")

    def _silence(self, pause: Pause, look_first: bool = False) -> Pause:
        if pause.reason == "operator_stop":
            return pause               # the rules keep its alerts quiet (tradingbot_paused)
        matcher = pause.matcher or MATCH_ALL
        mark = f"[{pause.occurrence}]" if pause.occurrence else f"#{pause.id}"
        comment = f"{pause.comment} (botwatch {pause.reason} {mark} by {pause.who})"
        ends = pause.until if pause.until is not None else self.clock() + FOREVER
        try:
            found = self.silences.find(f" {mark} by ") if pause.occurrence or look_first else None
            silence_id = found["id"] if found else self.silences.create([matcher], pause.since, ends, comment)
        except SilenceError as err:
            log.warning("pause %d: no silence yet (%s); the hold stands, tried again in %gs", pause.id, err, SYNC_EVERY)
            return pause
        self.holds.set_silence(pause.id, silence_id)
        return self.holds.find(pause.id)

    # -- words ------------------------------------------------------------------------------------------------

    def names(self, pause: Pause) -> str:
        return {"all": "all bots", "host": f"the bots on {pause.target}"}.get(pause.scope, ", ".join(pause.bots))

    @staticmethod
    def reason_words(pause: Pause) -> str:
        return {"pause": "pause", "maintenance": f"maintenance '{pause.comment}'",
                "operator_stop": "stop by its operator"}[pause.reason]

    def says(self, pause: Pause) -> str:
        """"paused by ana@desk until 2026-12-02 16:00 UTC: strategy change"."""
        if pause.reason == "operator_stop":
            return f"stopped by {pause.who}: {pause.comment}"
        what = {"pause": "paused", "maintenance": "in maintenance"}
        until = f"until {hhmm(pause.until)}" if pause.until is not None else "until resumed"
        return f"{what[pause.reason]} by {pause.who} {until}: {pause.comment}"

    def _record(self, pause: Pause, action: str, detail: str, notice: str | None = None) -> None:
        now = self.clock()
        for bot in self.covered(pause):
            self.ledger.record(bot, action, now, "success", detail, host=self.config.bot(bot).host)
        self.opslog.append(now, self.names(pause), None, action, "success", 0.0, detail)
        icon = "⏸" if action == "pause" else "▶️"
        self.notify(notice or f"{icon} <b>{escape(self.names(pause))}</b>: {escape(detail)}")
