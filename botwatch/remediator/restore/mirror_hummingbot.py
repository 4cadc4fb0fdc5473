"""The fill mirror of a Hummingbot: every `OrderFilledEvent` its event reporter logs, as TradeFill rows.

Hummingbot has no API to ask for fills, but it logs each one as JSON:
`... - hummingbot.core.event.event_reporter - EVENT_LOG - {"event_name": "OrderFilledEvent", ...}`.
The mirror follows the log (across rotation, like the exporter's tail), turns each fill event into the
TradeFill row Hummingbot writes for it (`market` = the event's source, `timestamp` in ms, BUY/SELL, the fee
in the quote currency) and appends the ones it lacks to `DATA_DIR/mirror/BOT.jsonl`, fsynced. A restore
inserts the rows the backup lacks, keyed by Hummingbot's primary key (market, order_id, exchange_trade_id).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path

from botwatch.core.config import Bot
from botwatch.core.logtail import LineFollower
from botwatch.remediator.restore.mirror import append_jsonl, read_jsonl

log = logging.getLogger(__name__)

MARKER = b" - EVENT_LOG - "


def fill_key(row: dict) -> tuple[str, str, str]:
    return str(row["market"]), str(row["order_id"]), str(row["exchange_trade_id"])


def read_fills(path: Path) -> list[dict]:
    """The mirrored TradeFill rows, in the order they were mirrored."""
    return read_jsonl(path, lambda row: all(isinstance(row.get(k), str) for k in
                                            ("market", "order_id", "exchange_trade_id", "price", "amount",
                                             "trade_fee_in_quote", "symbol", "trade_type")))


def _decimal(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _side(value) -> str | None:
    """TradeType as the event spells it (TradeType.BUY, BUY, buy, or the enum's value 1/2) -> BUY/SELL."""
    text = str(value).rsplit(".", 1)[-1].upper()
    return {"BUY": "BUY", "SELL": "SELL", "1": "BUY", "2": "SELL"}.get(text)


def fee_in_quote(fee, price: Decimal, amount: Decimal, base: str, quote: str) -> Decimal:
    """What Hummingbot's TradeFee comes to in the quote currency: the percentage of the fill's value
    (when it is charged in the quote or base), plus flat fees in the quote or base; others are not priced."""
    if not isinstance(fee, dict):
        return Decimal(0)
    total = Decimal(0)
    percent = _decimal(fee.get("percent")) or Decimal(0)
    token = fee.get("percent_token") or quote
    if token in (quote, base):
        total += percent * price * amount
    for flat in fee.get("flat_fees") or []:
        if isinstance(flat, dict) and (value := _decimal(flat.get("amount"))) is not None:
            if flat.get("token") == quote:
                total += value
            elif flat.get("token") == base:
                total += value * price
    return total


def row_of(event: dict, bot: Bot) -> dict | None:
    """The TradeFill row for an OrderFilledEvent, or None when the event lacks what a row needs."""
    if event.get("event_name") != "OrderFilledEvent":
        return None
    pair, side = event.get("trading_pair"), _side(event.get("trade_type"))
    price, amount = _decimal(event.get("price")), _decimal(event.get("amount"))
    when = _decimal(event.get("timestamp"))
    if not (isinstance(pair, str) and "-" in pair and side and price and amount and price > 0 and amount > 0
            and when and event.get("order_id") and event.get("exchange_trade_id") is not None):
        return None
    base, quote = pair.split("-", 1)
    milliseconds = int(when * 1000) if when < 10 ** 11 else int(when)      # seconds (as logged) or ms
    return {
        "market": str(event.get("event_source") or bot.exchange or ""),
        "symbol": pair, "base_asset": base, "quote_asset": quote, "timestamp": milliseconds,
        "order_id": str(event["order_id"]), "trade_type": side,
        "order_type": str(event.get("order_type") or "LIMIT").rsplit(".", 1)[-1],
        "price": str(price), "amount": str(amount), "leverage": int(event.get("leverage") or 1),
        "trade_fee": event.get("trade_fee") if isinstance(event.get("trade_fee"), dict) else {},
        "trade_fee_in_quote": str(fee_in_quote(event.get("trade_fee"), price, amount, base, quote)),
        "exchange_trade_id": str(event["exchange_trade_id"]),
        "position": str(event.get("position") or "NIL").rsplit(".", 1)[-1],
    }


class LogFillMirror:
    """Follows a Hummingbot's log and mirrors its fills; `sync()` has FillMirror's shape."""

    def __init__(self, bot: Bot, path: Path):
        self.bot = bot
        self.path = Path(path)
        self._keys: set[tuple[str, str, str]] | None = None
        self._lines = LineFollower(bot.log_file, f"{bot.name}: fill mirror")

    def sync(self) -> int:
        """Append the fills logged since the last call that the mirror lacks; how many (raises OSError)."""
        if self._keys is None:
            self._keys = {fill_key(row) for row in read_fills(self.path)}
        new: list[dict] = []
        for line in self._lines.read_lines():     # a truncated log is read again: the keys keep what was mirrored
            at = line.find(MARKER)
            if at < 0:
                continue
            try:
                event = json.loads(line[at + len(MARKER):])
            except ValueError:
                continue
            row = row_of(event, self.bot) if isinstance(event, dict) else None
            if row is not None and fill_key(row) not in self._keys:
                self._keys.add(fill_key(row))
                new.append(row)
        if new:
            append_jsonl(self.path, new)
            log.info("%s: %d fill(s) mirrored from the log", self.bot.name, len(new))
        return len(new)

    def close(self) -> None:
        self._lines.close()
