"""The intake: alerts from the webhook become ledger decisions, once per incident, before the webhook answers.

It never runs a playbook: it records each alert and schedules what the playbook table asks for; the
runner takes it from the ledger.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from botwatch.core.config import Config
from botwatch.remediator.actions.payload import Alert, rfc3339
from botwatch.remediator.actions.runner import deadline_for
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.playbooks import BY_ALERT, EXCHANGE_ALERTS
from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.tell.opslog import OperationsLog

log = logging.getLogger(__name__)

COUNTS = ("scheduled", "duplicate", "resolved", "ignored", "noted")
# Alertmanager says its own notifications fail: about botwatch, no bot. Telegram is usually what fails, so
# the remediator says it on its own path (its notifier: Telegram directly, or the outbox), once per incident.
DELIVERY_FAILING = "BotwatchAlertDeliveryFailing"
DELIVERY_KEY = "alert-delivery-failing"      # the ledger's record of it while it fires (the status page shows it)
DOWN = "TradingBotDown"          # the alert a death event stands for (the fast path)
# a death while one of these runs for the bot is that action's own doing (it stops the bot), not a new one
STOPPING_PLAYBOOKS = ("restart", "restore")


def down_key(bot: str) -> str:
    """The incident key of a bot's TradingBotDown, whether Alertmanager or a death event told it: one bot, one
    down incident at a time, so the alert that follows a death the fast path handled is that incident's copy
    (Alertmanager's own fingerprint differs between Prometheus servers with different external labels)."""
    return f"down:{bot}"


class Intake:
    def __init__(self, config: Config, ledger: Ledger, opslog: OperationsLog, clock: Callable[[], float],
                 on_scheduled: Callable[[], None] = lambda: None, learned: dict[str, str] | None = None,
                 notify: Callable[[str], None] = lambda text: None):
        self.config = config
        self.notify = notify           # a notice on the remediator's own path, sent after the delivery returns
        self.learned = learned if learned is not None else {}   # bot -> exchange, as its own API said
        self.ledger = ledger
        self.opslog = opslog
        self.clock = clock
        self.on_scheduled = on_scheduled

    def handle(self, alerts: list[Alert]) -> dict[str, int]:
        """Record the alerts and schedule what they ask for; returns how many of each kind."""
        now = self.clock()

        def take_all() -> dict[str, int]:
            counts = dict.fromkeys(COUNTS, 0)
            for alert in alerts:
                counts[self._take(alert, now)] += 1
            return counts
        # all of a delivery recorded, or none; concurrent deliveries share one commit (group commit)
        counts = self.ledger.grouped(take_all)
        if counts["scheduled"]:
            self.on_scheduled()
        return counts

    def death(self, name: str, at: float, detail: str) -> str:
        """The fast path: the bot's process or container ended at `at` (an event, not a poll). Taken as its
        TradingBotDown would be — one incident, the same playbook, pauses and backoff — unless a restart or
        restore of botwatch's runs for the bot (which stops it: that death is the action's own)."""
        now = self.clock()
        alert = Alert("death", {"alertname": DOWN, "bot": name}, down_key(name), rfc3339(at), began=at)
        with self.ledger.transaction():
            if self.ledger.acting_on(name, STOPPING_PLAYBOOKS):
                self._note(alert, now, f"death while botwatch acts on it ({detail[:200]}): that action's own",
                           bot=name)
                return "ignored"
            outcome = self._take(alert, now)
        if outcome == "scheduled":
            self.on_scheduled()
        return outcome

    def reset(self, bot: str) -> bool:
        """An operator's reset: close the circuit and forget past attempts."""
        if self.config.bot(bot) is None:
            return False
        self.ledger.update_bot(bot, attempts=0, circuit_open=0, memory_raised=0)
        self.opslog.append(self.clock(), bot, None, "reset", "success", 0.0, "operator reset: circuit closed")
        self.on_scheduled()
        return True

    def _take(self, alert: Alert, now: float) -> str:
        if alert.alertname in EXCHANGE_ALERTS:
            return self._take_exchange(alert, now)
        if alert.alertname == DELIVERY_FAILING:
            return self._take_delivery_failing(alert, now)
        bot = self.config.bot(alert.bot) if alert.bot is not None else None
        playbook = BY_ALERT.get(alert.alertname)
        if bot is None:
            log.warning("alert %.80r for unknown bot %.80r ignored", alert.alertname, alert.bot)
            self._note(alert, now, "unknown bot: ignored", alert.alertname[:200], (alert.bot or "")[:200])
            return "ignored"
        if alert.alertname == DOWN:
            alert = dataclasses.replace(alert, fingerprint=down_key(bot.name))
        if alert.status == "resolved":
            self._note(alert, now, self._resolved(alert, bot.name, playbook, now), bot=bot.name)
            return "resolved"
        if playbook is None:
            self._note(alert, now, "no playbook: noted", bot=bot.name)
            return "noted"
        if not self.ledger.open_incident(alert.fingerprint, alert.starts_at, alert.alertname, bot.name, now,
                                         began=alert.began):
            self._note(alert, now, "duplicate: already acted on", bot=bot.name)
            return "duplicate"
        self._new_incident(bot.name, playbook, now)
        self._schedule(bot, playbook, now, alert)
        self._note(alert, now, f"scheduled {playbook}", bot=bot.name)
        log.info("%s: %s firing: %s scheduled", bot.name, alert.alertname, playbook)
        return "scheduled"

    def _take_exchange(self, alert: Alert, now: float) -> str:
        """An alert about an exchange: once per incident, each bot on it runs its own on_rate_limit, and the
        exchange's own command (or, with none anywhere, a notice) runs once, on the first of its bots."""
        exchange = alert.labels.get("exchange")
        bots = self.config.bots_on(exchange, self.learned) if exchange else []
        if not bots:
            self._note(alert, now, "no configured bot on this exchange: ignored", bot=f"exchange:{str(exchange)[:200]}")
            return "ignored"
        target = f"exchange:{exchange}"
        if alert.status == "resolved":
            if not self.ledger.resolve_incident(alert.fingerprint, alert.starts_at, alert.alertname, target, now,
                                                alert.ends_at):
                self._note(alert, now, "resolved: an earlier episode; the open incident stays open", bot=target)
                return "resolved"
            cancelled = sum(self.ledger.cancel_scheduled(bot.name, playbook, now, f"{alert.alertname} resolved",
                                                         alertname=alert.alertname)
                            for bot in bots for playbook in ("api_rate_limit", "exchange_rate_limit"))
            self._note(alert, now, f"resolved; {cancelled} pending cancelled" if cancelled else "resolved", bot=target)
            return "resolved"
        if not self.ledger.open_incident(alert.fingerprint, alert.starts_at, alert.alertname, target, now):
            self._note(alert, now, "duplicate: already acted on", bot=target)
            return "duplicate"
        own = [bot for bot in bots if bot.on_rate_limit]
        for bot in own:
            self._schedule(bot, "api_rate_limit", now, alert, f"{exchange} rate-limits its bots together")
        settings = self.config.exchanges.get(exchange)
        if (settings and settings.on_rate_limit) or not own:
            self._schedule(bots[0], "exchange_rate_limit", now, alert, f"exchange {exchange}")
        self._note(alert, now, f"scheduled on_rate_limit for {len(own)} bot(s) on {exchange}", bot=target)
        log.info("%s: %s firing: %d bot(s) asked to slow down", exchange, alert.alertname, len(own))
        return "scheduled"

    def _take_delivery_failing(self, alert: Alert, now: float) -> str:
        """Alertmanager's notifications fail: in the operations log and on the status page while it lasts,
        and said once per incident on the remediator's own notice path."""
        integration = alert.labels.get("integration", "?")[:100]
        if alert.status == "resolved":
            self.ledger.resolve_incident(alert.fingerprint, alert.starts_at, alert.alertname, "", now, alert.ends_at)
            self.ledger.put(DELIVERY_KEY, None)
            self.opslog.append(now, "all bots", alert.alertname, "alert delivery", "resolved", 0.0,
                               f"Alertmanager's {integration} notifications are delivered again")
            self._note(alert, now, "resolved")
            return "resolved"
        if not self.ledger.open_incident(alert.fingerprint, alert.starts_at, alert.alertname, "", now):
            self._note(alert, now, "duplicate: already said")
            return "duplicate"
        self.ledger.put(DELIVERY_KEY, {"since": now, "integration": integration})
        self.opslog.append(now, "all bots", alert.alertname, "alert delivery", "failing", 0.0,
                           f"Alertmanager's {integration} notifications are failing: alerts may not reach anyone")
        self.notify(f"🚨 Alertmanager's <b>{escape(integration)}</b> notifications are failing: its alerts may "
                    "not be reaching you. botwatch's remediator says this on its own path; see the runbook "
                    "(BotwatchAlertDeliveryFailing).")
        self._note(alert, now, "said on the remediator's own notice path")
        log.error("Alertmanager's %s notifications are failing", integration)
        return "noted"

    def _schedule(self, bot, playbook: str, now: float, alert: Alert, detail: str | None = None) -> None:
        """A job for the bot's host: run here for this machine's bots, else by that host's agent."""
        self.ledger.schedule(bot.name, playbook, now, alert.alertname, alert.fingerprint, alert.starts_at, detail,
                             host=bot.host, deadline=deadline_for(self.config, bot.host, now))

    def _note(self, alert: Alert, now: float, note: str, alertname: str | None = None, bot: str = "") -> None:
        self.ledger.record_delivery(now, alertname or alert.alertname, bot, alert.status, alert.fingerprint,
                                    alert.starts_at, note)

    def _new_incident(self, bot: str, playbook: str, now: float) -> None:
        """A restart incident after a long healthy stretch starts the backoff afresh."""
        if playbook != "restart":
            return
        state = self.ledger.bot_state(bot)
        reset_after = self.config.remediation.healthy_reset_after
        if state.attempts and state.healthy_since is not None and now - state.healthy_since >= reset_after:
            log.info("%s: healthy for %.0fs since the last restart; restart count reset", bot, now - state.healthy_since)
            self.ledger.update_bot(bot, attempts=0, memory_raised=0)

    def _resolved(self, alert: Alert, bot: str, playbook: str | None, now: float) -> str:
        """Close the incident and cancel what it still had pending; returns the delivery's note."""
        if not self.ledger.resolve_incident(alert.fingerprint, alert.starts_at, alert.alertname, bot, now,
                                            alert.ends_at):
            return "resolved: an earlier episode; the open incident stays open"
        note = "resolved"
        if playbook:
            # only this alert's: a TradingBotDown that resolves must not cancel the restart a Stuck asked for
            cancelled = self.ledger.cancel_scheduled(bot, playbook, now, f"{alert.alertname} resolved",
                                                     alertname=alert.alertname)
            note += f"; {cancelled} pending {playbook} cancelled" if cancelled else ""
        if playbook == "restart":
            state = self.ledger.bot_state(bot)
            self.ledger.update_bot(bot, healthy_since=state.healthy_since or now, circuit_open=0)
        return note
