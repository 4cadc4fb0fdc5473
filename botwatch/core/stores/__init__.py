"""Trade stores: where a bot keeps its fills, behind one interface the exporter, the backups and the
restore use — validity (a state: corrupt until repaired), problems by check, rows, fills and P&L.

One implementation per format: the CSV trade file (csv_store), Freqtrade's SQLite database
(freqtrade_db) and Hummingbot's (hummingbot_db). A bot's kind (botwatch.core.presets) opens its store.
"""

from __future__ import annotations

from typing import Protocol

from botwatch.core.book import BookSummary
from botwatch.core.tradefile import DataFileStatus


class TradeStore(Protocol):
    def collect(self) -> DataFileStatus:
        """Validate what changed since the last call; the store's state now."""

    def summary(self, marks: dict[str, float] | None = None, unrealized: float | None = None) -> BookSummary:
        """P&L and positions from the valid fills; `unrealized` from the bot itself wins over marks."""

    def symbols(self) -> list[str]: ...
