"""Drift between a bot's records and its exchange account: for a bot with a `replay:` key (read-only is
enough), every `drift_check_interval` the exporter asks the exchange for the account's balances (ccxt's
fetch_balance: Binance's signed GET /api/v3/account) and compares, for each symbol the replay names, the
base asset's total with the position the bot's records imply. A manual trade on the account, a fill the
bot never recorded, a restore that missed one: the two differ, and TradingBotPositionDrift says by how much.

The account is taken to be the bot's: holdings of its own, or another bot on the same key, show as drift
(give each bot its own sub-account or key). Spot only: a short or a derivative position is not a balance.
One signed call per bot per interval, through ccxt's rate limiter; a refusal (-1021: this host's clock,
ExchangeClockSkew) is said in the log and the figures go stale rather than wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from botwatch.core.config import Bot
from botwatch.core.loop import ServiceLoop
from botwatch.exporter.clocks import STALE_AFTER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    symbol: str          # as the bot's records spell it
    records: float       # the position its records imply (base asset)
    exchange: float      # the account's total of the base asset

    @property
    def difference(self) -> float:
        return self.exchange - self.records


class DriftChecks(ServiceLoop):
    """Each bot with a replay key, every its drift_check_interval; `latest` holds the last look per bot."""

    name = "position-drift"

    def __init__(self, monitor, make=None, clock: Callable[[], float] = time.time):
        from botwatch.core.exchange import make_exchange
        super().__init__(clock)
        self.monitor = monitor
        self.bots: list[Bot] = [bot for bot in monitor.config.bots if bot.replay is not None]
        self._make = make or (lambda replay: make_exchange(replay, replay.options))
        self._clients: dict[str, object] = {}
        self._due = {bot.name: 0.0 for bot in self.bots}
        self.latest: dict[str, tuple[float, list[Drift]]] = {}     # bot -> (when, its drifts)
        self._lock = threading.Lock()

    def step(self) -> float:
        now = self.clock()
        for bot in self.bots:
            if self.stopping or self._due[bot.name] > now:
                continue
            self._due[bot.name] = now + bot.drift_check_interval
            try:
                self.look(bot)
            except Exception as err:   # the exchange away or refusing (a key, the clock): said, figures go stale
                self.trouble(f"{bot.name}: its balances could not be read: {type(err).__name__}: {str(err)[:200]}",
                             bot.name)
        return max(1.0, min(self._due.values(), default=now + 60) - self.clock())

    def look(self, bot: Bot) -> list[Drift] | None:
        """One comparison for `bot`, when its records are readable now; kept as its latest."""
        status = self.monitor.snapshot().get(bot.name)
        if status is None or not status.datafile.valid:
            return None        # a corrupt or missing file implies no position to compare
        client = self._clients.get(bot.name) or self._clients.setdefault(bot.name, self._make(bot.replay))
        totals = client.fetch_balance().get("total") or {}
        drifts = [Drift(own, float(status.book.positions.get(own, 0.0)), float(totals.get(unified.split("/", 1)[0]) or 0.0))
                  for unified, own in bot.replay.symbol_map().items()]
        with self._lock:
            self.latest[bot.name] = (self.clock(), drifts)
        return drifts

    def recent(self) -> list[tuple[Bot, list[Drift]]]:
        """Each bot's last look, where it is recent enough to publish (an account that can't be read any more
        is unknown, not as it was)."""
        now = self.clock()
        with self._lock:
            latest = dict(self.latest)
        return [(bot, latest[bot.name][1]) for bot in self.bots
                if bot.name in latest and now - latest[bot.name][0] <= STALE_AFTER * bot.drift_check_interval]
