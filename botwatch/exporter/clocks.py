"""The exchanges' clocks against this host's: tradingbot_exchange_clock_offset_seconds{exchange}.

A signed call carries this host's time; the exchange refuses one outside its window (Binance: -1021
"Timestamp for this request is outside of the recvWindow", 5 s by default), and every bot on the host fails
its orders at once. For each exchange a bot's `replay:` names, the exporter asks the exchange's time (ccxt's
fetch_time: Binance's GET /api/v3/time) a few times in a row, takes each answer's offset against the middle
of its round trip (half-RTT corrected), and publishes the median: ExchangeClockSkew pages before signing
breaks. Public calls only, no key, a handful of requests per exchange every INTERVAL.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable

from botwatch.core.config import Config
from botwatch.core.loop import ServiceLoop

log = logging.getLogger(__name__)

INTERVAL = 60.0      # seconds between looks at one exchange's clock
SAMPLES = 5          # round trips per look; the median's offset is published
STALE_AFTER = 3      # intervals after which a look is no longer published: an exchange not answering is unknown


@dataclass(frozen=True)
class ClockLook:
    offset: float        # exchange time - this host's, seconds (positive: the exchange is ahead)
    rtt: float           # the median round trip, seconds
    at: float            # when it was measured (this host's time)


def measure(fetch_ms: Callable[[], int], clock: Callable[[], float] = time.time, samples: int = SAMPLES) -> ClockLook:
    """`samples` round trips of fetch_ms (the exchange's time in ms): the median offset against each trip's
    midpoint, and the median round trip."""
    offsets, trips = [], []
    for _ in range(samples):
        sent = clock()
        server = fetch_ms() / 1000.0
        back = clock()
        offsets.append(server - (sent + back) / 2)
        trips.append(back - sent)
    return ClockLook(statistics.median(offsets), statistics.median(trips), clock())


class ExchangeClocks(ServiceLoop):
    """Looks at each exchange's clock every `interval`; `latest` holds the last good look per exchange."""

    name = "exchange-clocks"

    def __init__(self, config: Config, interval: float = INTERVAL, make=None, clock: Callable[[], float] = time.time):
        from botwatch.core.exchange import make_exchange
        super().__init__(clock)
        self.interval = interval
        self.replays = {}
        for bot in config.bots:            # one client per exchange id: the first bot's replay names where
            if bot.replay is not None:
                self.replays.setdefault(bot.replay.exchange, bot.replay)
        self._make = make or (lambda replay: make_exchange(replay, replay.options, signed=False))
        self._clients: dict[str, object] = {}
        self.latest: dict[str, ClockLook] = {}
        self._lock = threading.Lock()

    def step(self) -> float:
        for name, replay in self.replays.items():
            if self.stopping:
                break
            try:
                client = self._clients.get(name) or self._clients.setdefault(name, self._make(replay))
                look = measure(client.fetch_time, self.clock)
            except Exception as err:       # an exchange away or refusing: no figure, said, tried next round
                self.trouble(f"{name}: its time could not be read: {type(err).__name__}: {str(err)[:200]}", name)
                continue
            with self._lock:
                self.latest[name] = look
        return self.interval

    def recent(self) -> dict[str, ClockLook]:
        """The last look at each exchange, where it is recent enough to publish."""
        now = self.clock()
        with self._lock:
            return {name: look for name, look in self.latest.items() if now - look.at <= STALE_AFTER * self.interval}
