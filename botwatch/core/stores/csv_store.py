"""The CSV trade file as a trade store: the incremental validator feeding the average-cost book."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Callable

from botwatch.core.book import BookSummary, TradeBook
from botwatch.core.idwindow import IdWindow
from botwatch.core.tradefile import DataFileCheck, DataFileStatus

if TYPE_CHECKING:
    from botwatch.core.presets.kind import Bot

log = logging.getLogger(__name__)


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
        return dataclasses.replace(summary, unrealized=unrealized,
                                   equity=self.book.starting_balance + summary.realized + unrealized)

    def symbols(self) -> list[str]:
        return list(self.book.positions)

    # -- checkpoints (the exporter's, so a restart does not re-read every file) ---------------------

    def checkpoint(self) -> dict | None:
        state = self.check.checkpoint()
        return None if state is None else {"check": state, "book": self.book.state()}

    def resume(self, state: dict, window: IdWindow) -> bool:
        """Carry on from `checkpoint()`'s state when the file is the one it describes; False: nothing changed."""
        book = TradeBook(self.book.starting_balance)
        try:
            book.restore(state["book"])
        except (KeyError, TypeError, ValueError) as err:
            log.warning("%s: the checkpoint's book does not fit (%s); reading the file from its first byte",
                        self.check.name, err)
            return False
        if not self.check.resume(state["check"], window):
            return False
        self.book.restore(state["book"])
        return True
