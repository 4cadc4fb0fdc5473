"""Money at risk: a bot's open positions valued at the last known price, and whether each has a protective
order on the exchange (a stoploss that works while the bot is down). What the exporter publishes
(tradingbot_open_positions, tradingbot_exposure_quote, tradingbot_unprotected_exposure_quote), the alerts
weigh and the notices say.

Protection is known only where the bot's own records say it: Freqtrade keeps its stoploss orders on the
exchange in its `orders` table (`ft_order_side = 'stoploss'`, open). A CSV or Hummingbot bot's records hold
fills only: its protection is unknown, and unknown counts as unprotected — botwatch can't see a stop there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Exposure:
    symbol: str
    amount: float               # signed: negative is short
    entry: float                # average entry price
    mark: float                 # the last known price: the bot's own (API, health body), else its last fill
    protected: bool | None      # a stoploss order open on the exchange; None: the bot's records can't say

    @property
    def side(self) -> str:
        return "short" if self.amount < 0 else "long"

    @property
    def notional(self) -> float:
        """|amount| x mark, in the symbol's quote currency."""
        return abs(self.amount) * self.mark

    @property
    def unrealized(self) -> float:
        return (self.mark - self.entry) * self.amount

    @property
    def quote(self) -> str:
        return quote_of(self.symbol)


def quote_of(symbol: str) -> str:
    """The quote currency of a symbol as bots write it: BTC/USDT, BTC/USDT:USDT (ccxt futures), BTC-USDT
    (Hummingbot), BTCUSDT (Binance's own, for the common quotes); "" when it can't be told."""
    if "/" in symbol:
        return symbol.split("/", 1)[1].split(":", 1)[0]
    if "-" in symbol:
        return symbol.rsplit("-", 1)[1]
    for quote in ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return quote
    return ""


def one_quote(symbols: Iterable[str]) -> str:
    """The quote currency all `symbols` share, or "" (none, or mixed)."""
    quotes = {quote_of(symbol) for symbol in symbols}
    return quotes.pop() if len(quotes) == 1 else ""


@dataclass(frozen=True)
class Totals:
    positions: int
    exposure: float
    unprotected: float
    unprotected_positions: int
    quote: str                  # the one quote currency of them all, or "" when none or mixed


def totals(exposures: Iterable[Exposure]) -> Totals:
    items = [e for e in exposures if e.amount]
    quotes = {e.quote for e in items}
    unprotected = [e for e in items if e.protected is not True]
    return Totals(len(items), sum(e.notional for e in items), sum(e.notional for e in unprotected),
                  len(unprotected), quotes.pop() if len(quotes) == 1 else "")


def words(exposures: Iterable[Exposure]) -> str:
    """"2 open positions, 1840.00 USDT; 1 without a known stoploss on the exchange" — or "flat"; the words the
    alerts' `exposure` annotation says (botwatch.core.mixin.EXPOSURE)."""
    t = totals(exposures)
    if not t.positions:
        return "flat (no open position)"
    text = f"{t.positions} open position{'s' if t.positions != 1 else ''}, {t.exposure:.2f}" + (
        f" {t.quote}" if t.quote else " (mixed quote currencies)")
    if t.unprotected_positions:
        return text + f"; {t.unprotected_positions} without a known stoploss on the exchange"
    return text + "; each with a stoploss on the exchange"
