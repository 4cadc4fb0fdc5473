"""A kind of bot: what botwatch knows of its conventions, in one object per kind (csv.py, freqtrade.py,
hummingbot.py). The config fills its defaults in; the checks, the backups and the restores ask it for the
trade store, the API client, how its main loop is judged and whether its data file is a database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import requests

    from botwatch.core.config_types import DataFormat
    from botwatch.core.freqtrade_api import FreqtradeAPI, LoopHealth
    from botwatch.core.logtail import LogTail


class Bot(Protocol):
    """What a kind and its store read of a bot's config (botwatch.core.config.Bot): the kinds stand below the
    config, which fills their defaults in."""

    name: str
    data_file: Path
    data_format: DataFormat
    starting_balance: float
    log_file: Path | None
    api_url: str | None
    api_auth_file: Path | None
    health_timeout: float
    stuck_after: float | None
    kind: BotKind


class BotKind:
    """The generic behaviour; a kind overrides what differs. Keys the user gives always win over `defaults`."""

    name = ""
    error_patterns: dict[str, list[str]] = {}   # per error kind; a kind left out keeps botwatch's defaults
    stuck_after: str | None = None              # its main loop older than this is stuck (TradingBotStuck)
    database = False            # the data file is an SQLite database: backed up, checked and restored as one
    has_api = False             # a REST API (`api_url`): loop health, state, open-trade profit
    process_decides = False     # with a liveness source, that source alone decides up: an API failing while
                                # the process runs is TradingBotStuck, not down
    no_replay: str | None = None    # why `replay:` (fills from the exchange) can't serve this kind, if it can't

    def fill(self, raw: dict) -> dict:
        """The bot's raw mapping with this kind's defaults filled in."""
        filled = dict(raw)
        patterns = raw.get("error_patterns")
        if self.error_patterns and (patterns is None or isinstance(patterns, dict)):
            filled["error_patterns"] = {**self.error_patterns, **(patterns or {})}
        if self.stuck_after is not None:
            filled.setdefault("stuck_after", self.stuck_after)
        return filled

    def open_store(self, bot: Bot, clock: Callable[[], float] = time.time):
        """The bot's trade store (a TradeStore: botwatch.core.stores)."""
        return self.open_database(bot.data_file, bot.starting_balance, bot.name, clock)

    def open_database(self, path: Path, starting_balance: float = 0.0, name: str = "",
                      clock: Callable[[], float] = time.time):
        """The store of a database file of this kind (a backup's copy, a restored one)."""
        raise TypeError(f"a {self.name} bot's data file is no database")

    def api(self, bot: Bot, session: requests.Session | None = None) -> FreqtradeAPI | None:
        """The bot's own REST API, when it has one and the config says where."""
        return None

    def loop_trouble(self, bot: Bot, api: FreqtradeAPI | None, now: float) -> str | None:
        """What is wrong with a live bot's main loop (stuck, or not running); None when well or can't tell."""
        return None

    def loop_from_log(self, logtail: LogTail) -> LoopHealth | None:
        """Its loop's last sign of life read from its log, for a kind whose log is its voice."""
        return None

    def warnings(self, bot: Bot) -> list[tuple[str, str]]:
        """Keys this kind wants and the bot lacks, as `check-config` warnings: (key, why)."""
        return []
