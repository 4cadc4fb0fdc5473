"""The generic bot (your own script, the demo paper bot): fills in a CSV trade file, no API; its health
endpoint, when it has one, counts as much as its process."""

from __future__ import annotations

import time
from typing import Callable

from botwatch.core.presets.kind import Bot, BotKind
from botwatch.core.stores.csv_store import CsvStore


class CsvBot(BotKind):
    name = "csv"

    def open_store(self, bot: Bot, clock: Callable[[], float] = time.time) -> CsvStore:
        return CsvStore(bot, clock)


CSV = CsvBot()
