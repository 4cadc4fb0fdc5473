"""Presets: what botwatch knows of a real bot's conventions, filled into every key its config leaves out.

`preset: freqtrade` — the trade database is Freqtrade's SQLite file; its REST API (`api_url`) answers
`/api/v1/ping` without credentials, so that is the health endpoint; its log speaks ccxt's exception names;
its main loop runs every few seconds, so a loop older than `stuck_after` means stuck.

`preset: hummingbot` — the trade database is Hummingbot's SQLite file (table `TradeFill`); it has no
REST API, so its log is its voice: fills (`EVENT_LOG` lines) feed the mirror, the newest line tells when
it last did anything, and its connectors' error wording is matched below.

Keys the user gives win, kind by kind for `error_patterns`.
"""

from __future__ import annotations

PRESETS = ("freqtrade", "hummingbot")

FREQTRADE_ERROR_PATTERNS = {
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
FREQTRADE_STUCK_AFTER = "2m"     # ~24 loops of Freqtrade's default 5 s throttle: a slow loop is not a stuck one

HUMMINGBOT_ERROR_PATTERNS = {
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
HUMMINGBOT_STUCK_AFTER = "15m"

DEFAULTS = {
    "freqtrade": (FREQTRADE_ERROR_PATTERNS, FREQTRADE_STUCK_AFTER),
    "hummingbot": (HUMMINGBOT_ERROR_PATTERNS, HUMMINGBOT_STUCK_AFTER),
}


def apply(raw: dict) -> dict:
    """The bot's raw mapping with its preset's defaults filled in (unchanged without a known preset)."""
    preset = raw.get("preset")
    if not isinstance(preset, str) or preset not in DEFAULTS:
        return raw
    error_patterns, stuck_after = DEFAULTS[preset]
    filled = dict(raw)
    api_url = raw.get("api_url")
    if preset == "freqtrade" and isinstance(api_url, str) and "health_endpoint" not in raw:
        filled["health_endpoint"] = api_url.rstrip("/") + "/api/v1/ping"
    patterns = raw.get("error_patterns")
    if patterns is None or isinstance(patterns, dict):
        filled["error_patterns"] = {**error_patterns, **(patterns or {})}
    filled.setdefault("stuck_after", stuck_after)
    return filled
