"""Trade stores: where a bot keeps its fills, behind one interface the exporter, the backups and the
restore use — validity (a state: corrupt until repaired), problems by check, rows, fills and P&L.

One implementation per format: the CSV trade file (csv_store), Freqtrade's SQLite database
(freqtrade_db) and Hummingbot's (hummingbot_db). `open_store(bot)` picks by the bot's `store` (its
preset, or csv).
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

from botwatch.core.book import BookSummary
from botwatch.core.config import Bot
from botwatch.core.stores.csv_store import CsvStore
from botwatch.core.stores.freqtrade_db import FreqtradeStore
from botwatch.core.stores.hummingbot_db import HummingbotStore
from botwatch.core.tradefile import DataFileStatus


class TradeStore(Protocol):
    def collect(self) -> DataFileStatus:
        """Validate what changed since the last call; the store's state now."""

    def summary(self, marks: dict[str, float] | None = None, unrealized: float | None = None) -> BookSummary:
        """P&L and positions from the valid fills; `unrealized` from the bot itself wins over marks."""

    def symbols(self) -> list[str]: ...


SQLITE_STORES = ("freqtrade", "hummingbot")     # stores kept in an SQLite database (backed up as one)


def open_store(bot: Bot, clock: Callable[[], float] = time.time) -> TradeStore:
    return open_sqlite_store(bot.store, bot.data_file, bot.starting_balance, bot.name, clock) \
        if bot.store in SQLITE_STORES else CsvStore(bot, clock)


def open_sqlite_store(kind: str, path, starting_balance: float = 0.0, name: str = "",
                      clock: Callable[[], float] = time.time):
    if kind == "hummingbot":
        return HummingbotStore(path, starting_balance, name=name, clock=clock)
    return FreqtradeStore(path, starting_balance, name=name)
