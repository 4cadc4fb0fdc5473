"""The generic bot (your own script, the demo paper bot): fills in a CSV trade file, no API; its health
endpoint, when it has one, counts as much as its process."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from botwatch.core.presets.kind import BotKind
from botwatch.core.stores.csv_store import CsvStore

if TYPE_CHECKING:
    from botwatch.core.config import Bot


class CsvBot(BotKind):
    name = "csv"

    def open_store(self, bot: Bot, clock: Callable[[], float] = time.time) -> CsvStore:
        return CsvStore(bot, clock)


CSV = CsvBot()
