"""An alert acknowledged (`/ack` in Telegram, as a reply to its notice): an Alertmanager silence on that
alert, ended by botwatch as soon as Alertmanager holds no unresolved alert it covers.

Alertmanager needs a silence's end; "until it resolves" is a silence of ACK_FOR that the upkeep expires
when the alert is gone (a silenced alert stays in Alertmanager's list while it fires, so the question is
asked of Alertmanager itself). The acks are kept in the ledger: a restart or the other replica goes on.
"""

from __future__ import annotations

import logging
from typing import Callable

from botwatch.remediator.intent.silences import SilenceError, Silences
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.tell.opslog import OperationsLog

log = logging.getLogger(__name__)

ACKS_KEY = "alert-acks"
ACK_FOR = 7 * 86400.0      # the silence's own end, should the alert never resolve


class Acks:
    def __init__(self, ledger: Ledger, silences: Silences, opslog: OperationsLog, clock: Callable[[], float]):
        self.ledger, self.silences, self.opslog, self.clock = ledger, silences, opslog, clock

    def ack(self, labels: dict[str, str], who: str) -> str:
        """Silence the alert `labels` name until it resolves; the silence's id. SilenceError when no
        Alertmanager took it."""
        now = self.clock()
        matchers = [{"name": name, "value": value, "isRegex": False, "isEqual": True} for name, value in labels.items()]
        silence = self.silences.create(matchers, now, now + ACK_FOR,
                                       f"acknowledged by {who} (botwatch ack: until it resolves)")
        with self.ledger.transaction():
            acks = self.ledger.get(ACKS_KEY) or []
            self.ledger.put(ACKS_KEY, [*acks, {"silence": silence, "labels": labels, "who": who, "since": now}])
        self.opslog.append(now, labels.get("bot", "all bots"), labels["alertname"], "ack", "success", 0.0,
                           f"acknowledged by {who}: silenced until it resolves")
        return silence

    def sync(self) -> None:
        """End the silences of acknowledged alerts that resolved (or whose silence was expired by hand)."""
        for ack in self.ledger.get(ACKS_KEY) or []:
            try:
                state = self.silences.state(ack["silence"])
                if state is None or (state != "expired" and self.silences.firing(ack["labels"])):
                    continue            # no peer knows the silence yet (gossip), or the alert still fires
                self.silences.expire(ack["silence"])
            except SilenceError as err:    # Alertmanager away: asked again at the next upkeep
                log.warning("ack of %s: %s", ack["labels"], err)
                continue
            with self.ledger.transaction():
                self.ledger.put(ACKS_KEY, [a for a in self.ledger.get(ACKS_KEY) or [] if a["silence"] != ack["silence"]])
            self.opslog.append(self.clock(), ack["labels"].get("bot", "all bots"), ack["labels"]["alertname"], "ack",
                               "ended", 0.0, f"the alert {ack['who']} acknowledged resolved: its silence ended")
