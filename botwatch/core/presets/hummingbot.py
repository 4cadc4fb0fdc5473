"""Hummingbot: the trade database is its SQLite file (table `TradeFill`); it has no REST API, so its log is
its voice: fills (`EVENT_LOG` lines) feed the mirror, the newest line tells when it last did anything, and
its connectors' error wording is matched below."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from botwatch.core.freqtrade_api import LoopHealth
from botwatch.core.logtail import newest_line_time
from botwatch.core.presets.kind import Bot, BotKind
from botwatch.core.stores.hummingbot_db import HummingbotStore

if TYPE_CHECKING:
    from botwatch.core.logtail import LogTail

ERROR_PATTERNS = {
    "auth": [
        r"HTTP status is 401\b",
        r'"code":\s*-20(08|14|15)\b',
        r"(?i)invalid api[- ]?key",
        r"Check API key and network connection",
    ],
    "rate_limit": [
        r"HTTP status is (429|418)\b",
        r"API rate limit on \S+ .*has almost reached",
        r"\b(RateLimitExceeded|DDoSProtection)\b",
    ],
    "other": [
        r"(is|are) not ready\. Please wait",
        r"NetworkStatus\.NOT_CONNECTED",
        r"\bUnexpected error\b",
    ],
}
# Hummingbot logs when something happens, not on every tick of its clock: a quiet market is not a stuck bot
STUCK_AFTER = "15m"



class Hummingbot(BotKind):
    name = "hummingbot"
    error_patterns = ERROR_PATTERNS
    stuck_after = STUCK_AFTER
    database = True
    process_decides = True

    def open_database(self, path: Path, starting_balance: float = 0.0, name: str = "",
                      clock: Callable[[], float] = time.time) -> HummingbotStore:
        return HummingbotStore(path, starting_balance, name=name, clock=clock)

    def loop_trouble(self, bot: Bot, api, now: float) -> str | None:
        newest = newest_line_time(bot.log_file) if bot.log_file is not None else None
        if newest is not None and bot.stuck_after and now - newest > bot.stuck_after:
            return f"stuck: its log's newest line is {now - newest:.0f}s old"
        return None

    def loop_from_log(self, logtail: LogTail) -> LoopHealth:
        return LoopHealth(logtail.last_line_time, None, None, None)

    def warnings(self, bot: Bot) -> list[tuple[str, str]]:
        if bot.log_file is None:
            return [("log_file", "not set, so its fills are not mirrored and its loop is not watched")]
        return []


HUMMINGBOT = Hummingbot()
