"""A ccxt client for an exchange a bot's `replay:` names: the restore's fills (remediator.restore.exchange_fills)
and the exporter's look at the exchange's clock (exporter.clocks) both make theirs here."""

from __future__ import annotations

from urllib.parse import urlsplit

from botwatch.core.config import Replay


def read_credentials(replay: Replay) -> tuple[str, str]:
    """(apiKey, secret) from the credentials file: one line "apiKey:secret"."""
    text = replay.credentials_file.read_text(encoding="utf-8").strip()
    key, sep, secret = text.partition(":")
    if not sep or not key or not secret:
        raise ValueError(f"{replay.credentials_file}: expected one line 'apiKey:secret'")
    return key.strip(), secret.strip()


def make_exchange(replay: Replay, options: dict | None = None, signed: bool = True):
    """A ccxt client for the replay: rate limiter on, the key read now (unless `signed` is False: public calls
    only, no key), urls moved to `api_url` if given."""
    import ccxt

    key, secret = read_credentials(replay) if signed else (None, None)
    exchange = getattr(ccxt, replay.exchange)({
        **({"apiKey": key, "secret": secret} if signed else {}), "enableRateLimit": True,
        "timeout": int(replay.timeout * 1000), "options": {"fetchCurrencies": False, **(options or {})},
    })
    if replay.api_url:
        origin = replay.api_url.rstrip("/")
        exchange.urls["api"] = _moved(exchange.urls.get("api"), origin)
    return exchange


def _moved(urls, origin: str):
    """Every URL in ccxt's `urls['api']` (a string or a nested dict) with its scheme and host replaced."""
    if isinstance(urls, dict):
        return {name: _moved(url, origin) for name, url in urls.items()}
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return origin + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls
