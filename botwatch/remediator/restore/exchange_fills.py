"""Fills from the exchange itself, through ccxt: the last replay source of a restore.

A bot's `replay:` names its exchange (a ccxt id), the symbols it trades and a read-only API key. After the
backup and the journal (or mirror) are put back, the restore asks for the account's fills since the backup
(minus `margin`), per symbol, in windows of at most 24 hours (Binance refuses longer ones: -1127), paging
inside a window by the last fill's time (pages overlap at that millisecond, so fills are de-duplicated by
their exchange trade id). ccxt's own rate limiter paces the calls; a 429 waits its Retry-After and asks
again a few times; a 418 (an IP ban under way), an auth error or a timeout stops at once: botwatch never
adds to a ban. Whatever could not be fetched is named in `missing`, never raised: the restore goes on
with what the backup and the journal hold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable
from botwatch.core.config import Replay
from botwatch.core.exchange import make_exchange

log = logging.getLogger(__name__)

WINDOW_MS = 24 * 3600 * 1000 - 1        # the longest startTime..endTime span Binance accepts
PAGE = 1000                             # Binance's cap on limit
RETRIES_429 = 3
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class ExchangeFill:
    trade_id: str
    timestamp_ms: int
    symbol: str              # unified (BTC/USDT)
    side: str                # buy | sell
    price: Decimal
    amount: Decimal
    fee_in_quote: Decimal
    order_id: str
    fee_cost: Decimal = Decimal(0)     # the fee as the exchange charged it, in fee_currency
    fee_currency: str | None = None


@dataclass
class ExchangeFills:
    fills: list[ExchangeFill] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)     # what could not be fetched, and why
    requests: int = 0
    retries_left: int = RETRIES_429     # a 429 is about the account or IP, not a symbol: one budget per restore


def fetch_fills(replay: Replay, since_ms: int, until_ms: int, exchange=None,
                sleep: Callable[[float], None] = time.sleep) -> ExchangeFills:
    """Every fill of the account on the replay's symbols between the two times (ms), each once."""
    import ccxt

    result = ExchangeFills()
    try:
        exchange = exchange or make_exchange(replay, replay.options)
    except (OSError, ValueError) as err:
        result.missing.append(f"no exchange credentials: {err}")
        return result
    seen: set[str] = set()
    for symbol in replay.symbol_map():
        try:
            _fetch_symbol(exchange, symbol, since_ms, until_ms, seen, result, sleep)
        except ccxt.AuthenticationError as err:
            result.missing.append(f"{replay.exchange} refused the key ({_short(err)}): no fill of any symbol checked")
            break
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as err:
            if _banned(err):
                result.missing.append(f"{replay.exchange} is banning this IP (418): stopped asking")
                break
            rest = list(replay.symbol_map())
            rest = rest[rest.index(symbol):]
            result.missing.append(f"{', '.join(rest)}: {replay.exchange} still rate-limits after {RETRIES_429} "
                                  f"retries in all ({_short(err)}): stopped asking")
            break
        except (ccxt.NetworkError, ccxt.ExchangeError) as err:
            result.missing.append(f"{symbol}: {type(err).__name__}: {_short(err)}")
    result.fills.sort(key=lambda fill: (fill.timestamp_ms, fill.trade_id))
    return result


def _fetch_symbol(exchange, symbol: str, since_ms: int, until_ms: int, seen: set[str], result: ExchangeFills,
                  sleep: Callable[[float], None]) -> None:
    start = since_ms
    while start <= until_ms:
        end = min(start + WINDOW_MS, until_ms)
        cursor = start
        while True:
            page = _call(exchange, symbol, cursor, end, result, sleep)
            for trade in page:
                fill = _fill(trade, symbol)
                if fill is not None and f"{symbol}:{fill.trade_id}" not in seen:
                    seen.add(f"{symbol}:{fill.trade_id}")
                    result.fills.append(fill)
            if len(page) < PAGE:
                break
            # the next page starts at the newest fill's millisecond (it may hold more fills); a page that is
            # all one millisecond steps past it rather than ask for the same page again
            newest = max(int(trade.get("timestamp") or cursor) for trade in page)
            cursor = newest if newest > cursor else newest + 1
            if cursor > end:
                break
        start = end + 1


def _call(exchange, symbol: str, since: int, until: int, result: ExchangeFills,
          sleep: Callable[[float], None]) -> list[dict]:
    import ccxt

    while True:
        result.requests += 1
        try:
            return exchange.fetch_my_trades(symbol, since, PAGE, {"until": until})
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as err:    # 429 or 418, as ccxt names them
            if _banned(err) or result.retries_left == 0:
                raise
        result.retries_left -= 1
        sleep(_retry_after(exchange))


def _banned(err: Exception) -> bool:
    """A 418: the exchange is banning the IP for ignoring 429s (ccxt words it "<exchange> 418 ...")."""
    return " 418 " in f" {err} "


def _retry_after(exchange) -> float:
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return 1.0


def _fill(trade: dict, symbol: str) -> ExchangeFill | None:
    try:
        price, amount = Decimal(str(trade["price"])), Decimal(str(trade["amount"]))
        base, quote = symbol.split("/", 1)[0], symbol.split("/", 1)[1].split(":")[0]
        fee = trade.get("fee") or {}
        cost = Decimal(str(fee.get("cost") or 0))
        currency = fee.get("currency")
        fee_in_quote = cost if currency in (None, quote) else cost * price if currency == base else Decimal(0)
        return ExchangeFill(str(trade["id"]), int(trade["timestamp"]), symbol, str(trade["side"]).lower(), price,
                            amount, fee_in_quote, str(trade.get("order") or ""), cost, currency or quote)
    except (KeyError, TypeError, ValueError, ArithmeticError, IndexError):
        log.warning("a trade from the exchange without the fields of a fill skipped: %.200r", trade)
        return None


def _short(err: Exception) -> str:
    return str(err)[:200]


class ExchangeSource:
    """The exchange's fills as a restore's TradeSource: trade-file fields, the symbol as the bot writes it."""

    def __init__(self, replay: Replay, since: float, until: float, fetch: Callable[..., ExchangeFills] = fetch_fills,
                 sleep: Callable[[float], None] = time.sleep):
        self.replay = replay
        self.sleep = sleep
        self.description = f"the exchange ({replay.exchange})"
        self.since, self.until = since, until
        self.fetch = fetch
        self.result: ExchangeFills | None = None

    def fills(self):
        self.result = self.fetch(self.replay, int(self.since * 1000), int(self.until * 1000), sleep=self.sleep)
        symbols = self.replay.symbol_map()
        for fill in self.result.fills:
            moment = datetime.fromtimestamp(fill.timestamp_ms / 1000, timezone.utc)
            yield {"timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                   "trade_id": fill.trade_id, "symbol": symbols.get(fill.symbol, fill.symbol), "side": fill.side,
                   "price": _plain(fill.price), "qty": _plain(fill.amount), "fee": _plain(fill.fee_in_quote)}


def _plain(number: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 30000.5, 0.01, 0."""
    text = format(number.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"
