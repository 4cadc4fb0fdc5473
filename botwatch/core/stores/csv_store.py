"""The CSV trade file as a trade store: the incremental validator feeding the average-cost book."""

from __future__ import annotations

import time
from typing import Callable

from botwatch.core.book import BookSummary, TradeBook
from botwatch.core.config import Bot
from botwatch.core.tradefile import DataFileCheck, DataFileStatus


class CsvStore:
    def __init__(self, bot: Bot, clock: Callable[[], float] = time.time):
        self.book = TradeBook(bot.starting_balance)
        self.check = DataFileCheck(bot.data_file, bot.data_format, self.book, clock, name=bot.name)

    def collect(self) -> DataFileStatus:
        return self.check.collect()

    def summary(self, marks: dict[str, float] | None = None, unrealized: float | None = None) -> BookSummary:
        summary = self.book.summary(marks)
        if unrealized is None:
            return summary
        return BookSummary(summary.realized, unrealized, self.book.starting_balance + summary.realized + unrealized,
                           summary.positions, summary.trades)

    def symbols(self) -> list[str]:
        return list(self.book.positions)
