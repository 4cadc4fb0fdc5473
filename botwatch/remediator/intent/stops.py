"""Deliberate stops: a bot its operator stopped is not a bot that failed.

- A Freqtrade whose own API says `stopped` or `paused` (its Telegram /stop, /pause, /stopentry, or the REST
  API) was stopped by its operator — unless botwatch's own restart brought it up that way (its
  `initial_state`) from `running`: then botwatch starts it, back to the state it was in before the crash,
  never to one the operator did not choose. `on_stopped: start` keeps the old way (TradingBotStopped starts it).
- A container stopped or killed through the Docker API (`docker stop`/`kill`, `compose stop`: docker logs a
  `kill` or `stop` event before the `die`) — a process that died by itself, or the OOM killer, leaves only
  `die`/`oom`.
- A systemd unit stopped with `systemctl stop` (inactive, Result=success), not `failed`.
- A process bot stopped with `botwatch stop BOT` (recorded as intent first).

Each becomes a hold (reason `operator_stop`, no silence: the rules keep the bot's alerts quiet through
`tradingbot_paused`), told once; it ends when the bot runs again, or with `botwatch resume` (which starts a
Freqtrade through its API; any other bot is left to the normal path).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from botwatch.core.config import Config
from botwatch.remediator.intent.pauses import Pauses, Scope
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.ledger.holds import Pause
from botwatch.remediator.playbooks.base import LOOP_ALERTS, Context, Result
from botwatch.remediator.runtimes import RuntimeFailure
from botwatch.remediator.tell.notifier import escape

log = logging.getLogger(__name__)

OBSERVE_EVERY = 5.0         # seconds between looks at each bot's own state (one GET show_config for a Freqtrade)
STOPPED = ("stopped", "paused")
SELF_STOP = "OperationalException. Stopping trader"     # what Freqtrade logs when it stops itself


def _docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 times with nanoseconds ("2026-12-02T03:50:01.123456789Z") as Unix seconds."""
    if not text or text.startswith("0001-"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "0." + "".join(c for c in rest if c.isdigit()) if rest else "0"
    return datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp() + float(fraction)


def _stopped_through_api(client, container) -> str | None:
    """How a container that is not running was stopped through the Docker API since its last start
    ("docker stop at 14:02:11 UTC"), or None when it died by itself (or runs)."""
    state = container.attrs.get("State", {})
    if state.get("Running") or state.get("Restarting"):
        return None
    started, finished = _docker_time(state.get("StartedAt")), _docker_time(state.get("FinishedAt"))
    if started is None:
        return None
    # up to now, never later: the daemon holds an events call whose `until` is ahead until that time comes
    # (it cost every restart of a dead container 5 s). An API stop or kill logs `kill` before the `die`.
    until = min((finished or started) + 5, time.time())
    events = client.events(since=f"{started:.9f}", until=f"{until:.9f}", decode=True,
                           filters={"type": "container", "container": container.id})
    try:
        for event in events:
            at = event.get("timeNano", 0) / 1e9 or event.get("time", 0)
            action = event.get("Action") or event.get("status") or ""
            if at >= started and (action == "stop" or action == "kill" or action.startswith("kill:")):
                signal = event.get("Actor", {}).get("Attributes", {}).get("signal")
                verb = "docker stop" if action == "stop" or signal == "15" else f"docker kill (signal {signal})"
                return f"{verb} at {datetime.fromtimestamp(at, timezone.utc).strftime('%H:%M:%S UTC')}"
    finally:
        close = getattr(events, "close", None)
        if close:
            close()
    return None


def docker_stop(runtime) -> str | None:
    return _stopped_through_api(runtime.probe.client(), runtime.container())


def compose_stop(runtime) -> str | None:
    client = runtime.probe.docker.client()
    for container in runtime.containers():
        found = _stopped_through_api(client, container)
        if found:
            return found.replace("docker stop", "docker compose stop (or docker stop)")
    return None


def systemd_stop(runtime) -> str | None:
    try:
        result = runtime.run(["systemctl", "show", "--property=ActiveState,Result", "--", runtime.bot.systemd_unit],
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if props.get("ActiveState") == "inactive" and props.get("Result") == "success":
        return "systemctl stop (inactive, Result=success)"
    return None


# a runtime's name -> how to tell that it was stopped on purpose (the others can't be, but by `botwatch stop`)
DELIBERATE = {"docker": docker_stop, "compose": compose_stop, "systemd": systemd_stop}


def deliberate_stop(runtime) -> str | None:
    """How the bot was stopped by a person through its runtime, or None (running, died, or can't tell)."""
    how = DELIBERATE.get(runtime.name)
    if how is None:
        return None
    try:
        return how(runtime)
    except (RuntimeFailure, Exception) as err:  # the daemon away: can't tell, so not deliberate
        log.debug("%s: can't tell how it stopped: %s", runtime.bot.name, err)
        return None


OPERATOR_STOP = "held: stopped by its operator: "     # how an agent's held run says it (the central hold follows)


def deliberate(ctx: Context) -> Result | None:
    """An agent's check before a playbook: a bot stopped through its runtime by a person (docker, systemd) is
    held. The central remediator turns the run's end into the bot's hold (web/agents.py), told once; its
    pauses and maintenance windows it holds itself, before a job is handed out."""
    if ctx.bot.on_stopped == "start":
        return None
    alive = ctx.check_alive()
    if alive.up and ctx.api is not None and ctx.action.alertname in LOOP_ALERTS:
        # no state watch here to tell its initial_state after a restart apart: held and told, never started
        state = ctx.api.state()
        if state in STOPPED:
            return Result("held", f"{OPERATOR_STOP}Freqtrade {state} through its own API or Telegram (or in its "
                                  "initial_state after a restart); not started")
    if alive.up or alive.unknown:
        return None
    how = deliberate_stop(ctx.runtime)
    return Result("held", f"{OPERATOR_STOP}{how}; not restarted") if how else None


class StopWatch:
    """Watches the bots this remediator acts on for stops botwatch did not cause, and ends their holds when
    they run again."""

    def __init__(self, config: Config, ledger: Ledger, pauses: Pauses, runtimes: dict, apis: dict,
                 clock: Callable[[], float], busy: Callable[[], set[str]] = set):
        self.config, self.ledger, self.pauses = config, ledger, pauses
        self.runtimes, self.apis, self.clock, self.busy = runtimes, apis, clock, busy
        self._looked = 0.0
        self._lock = threading.Lock()          # one round of looks at a time
        self._stopping = threading.Lock()      # one hold per stop, whoever sees it first (a look, a playbook)

    # -- what a playbook asks first ------------------------------------------------------------------------

    def check(self, ctx: Context) -> Result | None:
        """`held` when the bot is paused, in maintenance, or stopped by its operator; else None (act)."""
        bot = ctx.bot
        pause = self.pauses.holding(bot.name)
        if pause is not None:
            return Result("held", f"held: {self.pauses.says(pause)}; nothing touched")
        if bot.on_stopped == "start":
            return None
        alive = ctx.check_alive()
        if alive.up and ctx.api is not None and ctx.action.alertname in LOOP_ALERTS + (None,):
            state = ctx.api.state()
            if state in STOPPED and not self.came_up_stopped(bot.name):
                pause = self.operator_stop(bot.name, self._why_stopped(ctx.runtime, state))
                return Result("held", f"held: {self.pauses.says(pause)}; not started")
        if not alive.up and not alive.unknown:
            how = deliberate_stop(ctx.runtime)
            if how:
                pause = self.operator_stop(bot.name, how)
                return Result("held", f"held: {self.pauses.says(pause)}; not restarted")
        return None

    # -- looking on its own --------------------------------------------------------------------------------

    def tick(self, submit: Callable) -> None:
        now = self.clock()
        if now - self._looked < OBSERVE_EVERY or not self._lock.acquire(blocking=False):
            return
        self._looked = now
        try:
            submit(self._look_all)
        except Exception:
            self._lock.release()
            raise

    def _look_all(self) -> None:
        try:
            busy = self.busy()
            for name in self.runtimes:
                if name not in busy:
                    try:
                        self.look(name)
                    except Exception:  # one bot's trouble must not stop the others' looks
                        log.exception("%s: could not look at its state", name)
        finally:
            self._lock.release()

    def look_after(self, name: str) -> None:
        """Look at a bot as soon as a playbook run for it ends: what it came up as after a start is seen
        then, not up to OBSERVE_EVERY later (a stop by its operator in between was taken for its
        initial_state after the restart, and undone)."""
        if name in self.runtimes:
            self.look(name)

    def look(self, name: str) -> None:
        bot, runtime, api = self.config.bot(name), self.runtimes[name], self.apis.get(name)
        held = self._operator_hold(name)
        alive = runtime.status()
        if getattr(alive, "error", False):
            return                                  # can't ask its runtime: can't tell
        if api is not None and alive.up:
            state = api.state()
            if state is None:
                return
            before = self.ledger.get(f"observed-state:{name}")
            if state in STOPPED and bot.on_stopped == "notify" and not held and self.came_up_stopped(name, before):
                self._start_again(name, api, state)
                return
            started = self.ledger.bot_state(name).last_start_at
            if before is None or before[0] != state or (started is not None and before[1] < started):
                # kept when it changes, and at the first look after botwatch started it: a stop after that
                # look is its operator's, whatever the state was before the start
                self.ledger.put(f"observed-state:{name}", [state, self.clock()])
            if state == "running" and held:
                self.pauses.end(held, self.clock(), "running again (its operator started it)")
            elif state in STOPPED and not held and bot.on_stopped == "notify":
                self.operator_stop(name, self._why_stopped(runtime, state))
            return
        if held and alive.up:
            self.pauses.end(held, self.clock(), "running again (its operator started it)")
        elif not alive.up and not held and bot.on_stopped == "notify":
            how = deliberate_stop(runtime)
            if how:
                self.operator_stop(name, how)

    # -- decisions -----------------------------------------------------------------------------------------

    def came_up_stopped(self, name: str, before: list | None = None) -> bool:
        """Whether a stopped Freqtrade is so because botwatch started it (a restart, a restore) and it came up
        in its initial_state, while it was running when last seen before that start — not because its
        operator stopped it. Unknown (never seen before the start) is the operator's: botwatch does not act."""
        before = before if before is not None else self.ledger.get(f"observed-state:{name}")
        started = self.ledger.bot_state(name).last_start_at
        return started is not None and before is not None and before[0] == "running" and before[1] < started

    @staticmethod
    def _why_stopped(runtime, state: str) -> str:
        """A Freqtrade's stop in words: its own, after an OperationalException (it asks a person to /start when
        safe, so botwatch does not either), or its operator's through its API or Telegram."""
        if state == "stopped" and SELF_STOP in runtime.recent_logs(200):
            return ("Freqtrade stopped itself after an OperationalException (see its log); it asks a person to "
                    "/start it when that is safe")
        return f"Freqtrade {state} through its own API or Telegram"

    def _start_again(self, name: str, api, state: str) -> None:
        ok = api.start()
        if ok:
            self.ledger.put(f"observed-state:{name}", ["running", self.clock()])
        else:
            self.ledger.put(f"observed-state:{name}", [state, self.clock()])
        detail = (f"came up {state} after botwatch started it (its initial_state) but was running before: "
                  + ("started through its API, as it was" if ok else "POST /api/v1/start failed"))
        self.ledger.record(name, "start", self.clock(), "success" if ok else "failed", detail,
                           host=self.config.bot(name).host)
        self.pauses.opslog.append(self.clock(), name, None, "start", "success" if ok else "failed", 0.0, detail)
        self.pauses.notify(f"▶️ <b>{escape(name)}</b> {escape(detail)}.")

    def operator_stop(self, name: str, how: str) -> Pause:
        """The bot's hold for a stop botwatch did not cause (made and told once): its operator's, or a
        Freqtrade's own after an error (which asks a person to decide)."""
        with self._stopping:
            held = self._operator_hold(name)
            if held is not None:
                return held
            who = "Freqtrade itself" if how.startswith("Freqtrade stopped itself") else "its operator"
            made = self.pauses.pause(Scope(bots=(name,)), None, how, who, reason="operator_stop",
                                     notice=self._stop_notice)
            return made[0] if made else self._operator_hold(name)

    def _stop_notice(self, pause: Pause) -> str:
        at = datetime.fromtimestamp(pause.since, timezone.utc).strftime("%H:%M UTC")
        return (f"⏹ <b>{escape(pause.target)}</b> was stopped by {escape(pause.who)} at {at} ({escape(pause.comment)}) — "
                f"botwatch will not start it; <code>botwatch resume {escape(pause.target)}</code> hands it back"
                + (", as does Freqtrade's /start" if pause.target in self.apis else "") + ".")

    def _operator_hold(self, name: str) -> Pause | None:
        return next((p for p in self.pauses.holds.open() if p.reason == "operator_stop" and p.scope == "bot"
                     and p.target == name), None)

    def resumed(self, pause: Pause) -> None:
        """`botwatch resume` of a stop by its operator: a Freqtrade is started through its API; another bot
        is left to the normal path (it is down: its alerts, then a restart)."""
        api = self.apis.get(pause.target)
        if api is not None and pause.target in self.runtimes:
            ok = api.start()
            self.pauses.notify(f"▶️ <b>{escape(pause.target)}</b>: " + (
                "started through its API (resumed)." if ok else "resumed, but POST /api/v1/start failed."))
