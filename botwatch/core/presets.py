"""Presets: what botwatch knows of a real bot's conventions, filled into every key its config leaves out.

`preset: freqtrade` — the trade database is Freqtrade's SQLite file; its REST API (`api_url`) answers
`/api/v1/ping` without credentials, so that is the health endpoint; its log speaks ccxt's exception names;
its main loop runs every few seconds, so a loop older than `stuck_after` means stuck. Keys the user gives
win, kind by kind for `error_patterns`.
"""

from __future__ import annotations

PRESETS = ("freqtrade",)

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
        r"\b(429|418)\b",
    ],
    "other": [
        r"\bInvalidNonce\b",
        r"\bOperationalException\b",
        r"\bGiving up\.",
        r"\b(ExchangeError|NetworkError|RequestTimeout|ExchangeNotAvailable|TemporaryError)\b",
    ],
}
FREQTRADE_STUCK_AFTER = "2m"     # ~24 loops of Freqtrade's default 5 s throttle: a slow loop is not a stuck one


def apply(raw: dict) -> dict:
    """The bot's raw mapping with its preset's defaults filled in (unchanged without a known preset)."""
    if raw.get("preset") != "freqtrade":
        return raw
    filled = dict(raw)
    api_url = raw.get("api_url")
    if isinstance(api_url, str) and "health_endpoint" not in raw:
        filled["health_endpoint"] = api_url.rstrip("/") + "/api/v1/ping"
    patterns = raw.get("error_patterns")
    if patterns is None or isinstance(patterns, dict):
        filled["error_patterns"] = {**FREQTRADE_ERROR_PATTERNS, **(patterns or {})}
    filled.setdefault("stuck_after", FREQTRADE_STUCK_AFTER)
    return filled
