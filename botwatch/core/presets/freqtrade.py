"""Freqtrade: the trade database is its SQLite file; its REST API (`api_url`) answers `/api/v1/ping` without
credentials, so that is the health endpoint; its log speaks ccxt's exception names; its main loop runs every
few seconds, so a loop older than `stuck_after` means stuck."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from botwatch.core.freqtrade_api import FreqtradeAPI
from botwatch.core.presets.kind import Bot, BotKind
from botwatch.core.stores.freqtrade_db import FreqtradeStore

if TYPE_CHECKING:
    import requests


ERROR_PATTERNS = {
    "auth": [
        r"\bAuthenticationError\b",
        r"(?i)invalid api[- ]?key",
        r'"code":\s*-20(08|14|15)\b',           # Binance: bad key id, bad key format, key/IP/permissions
        r"\bPermissionDenied\b|\bAccountSuspended\b",
    ],
    "rate_limit": [
        r"\bDDoSProtection\b",
        r"(?i)DDosProtection backoff",
        r"\bRateLimitExceeded\b",
        r"(?<![\w,.:])(429|418)(?![\w.,])",   # a status code, not the milliseconds of Freqtrade's log time
    ],
    "other": [
        r"\bInvalidNonce\b",
        r"\bOperationalException\b",
        r"\bGiving up\.",
        r"\b(ExchangeError|NetworkError|RequestTimeout|ExchangeNotAvailable|TemporaryError)\b",
    ],
}
STUCK_AFTER = "2m"     # ~24 loops of Freqtrade's default 5 s throttle: a slow loop is not a stuck one

PING = "/api/v1/ping"


class Freqtrade(BotKind):
    name = "freqtrade"
    error_patterns = ERROR_PATTERNS
    stuck_after = STUCK_AFTER
    database = True
    has_api = True
    process_decides = True
    no_replay = ("its database keeps each trade with its orders, which the exchange's fills can't rebuild "
                 "faithfully (entry and exit pairing, partial exits, fees); its restore replays the closed trades "
                 "botwatch mirrors from its own API instead")

    def fill(self, raw: dict) -> dict:
        filled = super().fill(raw)
        api_url = raw.get("api_url")
        if isinstance(api_url, str) and "health_endpoint" not in raw:
            filled["health_endpoint"] = api_url.rstrip("/") + PING
        return filled

    def open_database(self, path: Path, starting_balance: float = 0.0, name: str = "",
                      clock: Callable[[], float] = time.time) -> FreqtradeStore:
        return FreqtradeStore(path, starting_balance, name=name)

    def api(self, bot: Bot, session: requests.Session | None = None) -> FreqtradeAPI | None:
        return FreqtradeAPI(bot.api_url, bot.api_auth_file, bot.health_timeout, session) if bot.api_url else None

    def loop_trouble(self, bot: Bot, api: FreqtradeAPI | None, now: float) -> str | None:
        if api is None:
            return None
        loop = api.loop_health(open_profit=False)
        if loop.last_loop is None:
            return None     # can't tell (still starting, or credentials wrong): a frozen bot fails its ping instead
        if bot.stuck_after and now - loop.last_loop > bot.stuck_after:
            return f"stuck: its main loop last finished {now - loop.last_loop:.0f}s ago"
        if loop.state is not None and loop.state != "running":
            return f"state {loop.state}"
        return None


FREQTRADE = Freqtrade()
