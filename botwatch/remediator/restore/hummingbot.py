"""Filling a restored Hummingbot database: the mirror's fills, then the exchange's, each fill once.

The backup is put back by the SQLite restore procedure (sqlite.restore_database); this adds
what it lacks. A fill is one by Hummingbot's primary key (market, order_id, exchange_trade_id) — mirrored
rows carry all three and go in with `INSERT OR IGNORE` — and a fill from the exchange is one the database
lacks when no row of that market and symbol has its exchange trade id (the exchange does not know
Hummingbot's client order ids; such a row keeps the exchange's order id). New rows go in in time order, so the
average-cost book reads them as they happened.
"""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot
from botwatch.remediator.restore.exchange_fills import ExchangeFills, fetch_fills
from botwatch.remediator.restore.mirror_hummingbot import read_fills
from botwatch.remediator.restore.csvfile import RestoreReport

COLUMNS = ("config_file_path", "strategy", "market", "symbol", "base_asset", "quote_asset", "timestamp", "order_id",
           "trade_type", "order_type", "price", "amount", "leverage", "trade_fee", "trade_fee_in_quote",
           "exchange_trade_id", "position")


def scaled(value) -> int:
    """SqliteDecimal(6) as Hummingbot binds it: int(Decimal(value) × 10⁶)."""
    return int(Decimal(str(value)) * 10 ** 6)


def hummingbot_fill_in(bot: Bot, mirror: Path | None, clock: Callable[[], float] = time.time,
                       sleep: Callable[[float], None] = time.sleep,
                       fetch: Callable[..., ExchangeFills] = fetch_fills) -> Callable:
    def fill_in(path: Path, report: RestoreReport, manifest) -> None:
        rows = read_fills(mirror) if mirror else []
        with sqlite3.connect(path) as db:
            report.from_backup = db.execute("SELECT COUNT(*) FROM TradeFill").fetchone()[0]
            origin = db.execute("SELECT config_file_path, strategy FROM TradeFill ORDER BY rowid DESC LIMIT 1").fetchone()
            origin = origin or (bot.name, bot.name)
            new = [row for row in rows if not _has(db, row)]
            from_mirror = len(new)
            from_exchange = 0
            if bot.replay is not None:
                since = int(((manifest.last_ts or manifest.created) - bot.replay.margin) * 1000)
                fetched = fetch(bot.replay, since, int(clock() * 1000), sleep=sleep)
                known = {(row["market"], row["symbol"], row["exchange_trade_id"]) for row in new}
                market = bot.replay.exchange
                for fill in fetched.fills:
                    row = _row_of_exchange_fill(fill, market, bot.replay.symbol_map())
                    key = (market, row["symbol"], row["exchange_trade_id"])
                    if key in known or _has_trade(db, *key):
                        continue
                    known.add(key)
                    new.append(row)
                    from_exchange += 1
                report.say(f"{len(fetched.fills)} fills from {market} since the backup ({fetched.requests} requests)"
                           + (f"; not checked: {'; '.join(fetched.missing)}" if fetched.missing else ""))
                report.missing = fetched.missing
            new.sort(key=lambda row: int(row["timestamp"]))
            for row in new:
                values = {**row, "config_file_path": row.get("config_file_path") or origin[0],
                          "strategy": row.get("strategy") or origin[1],
                          "price": scaled(row["price"]), "amount": scaled(row["amount"]),
                          "trade_fee_in_quote": scaled(row["trade_fee_in_quote"]),
                          "trade_fee": json.dumps(row.get("trade_fee") or hummingbot_fee(row["trade_type"]))}
                db.execute(f"INSERT OR IGNORE INTO TradeFill ({', '.join(COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(COLUMNS))})", [values.get(c) for c in COLUMNS])
        report.replayed = from_mirror + from_exchange
        report.sources = {"the fill mirror": from_mirror}
        if bot.replay is not None:
            report.sources[f"the exchange ({bot.replay.exchange})"] = from_exchange
        report.say(f"{report.from_backup} fills from the backup, {from_mirror} from the fill mirror "
                   f"({len(rows)} in it), {from_exchange} from the exchange")
    return fill_in


def _has(db: sqlite3.Connection, row: dict) -> bool:
    return db.execute("SELECT 1 FROM TradeFill WHERE market = ? AND order_id = ? AND exchange_trade_id = ?",
                      (row["market"], row["order_id"], row["exchange_trade_id"])).fetchone() is not None


def hummingbot_fee(side: str, token: str | None = None, amount: Decimal | None = None) -> dict:
    """A fill's fee as Hummingbot itself writes and reads it (`TradeFeeBase.to_json`/`from_json` in
    hummingbot/core/data_type/trade_fee.py): a spot buy's fee is AddedToCost, a sell's DeductedFromReturns
    (`new_spot_fee` with the default schema); what the exchange charged is a flat fee in its own asset."""
    flat = [{"token": token, "amount": str(amount)}] if token and amount else []
    return {"fee_type": "AddedToCost" if side.upper() == "BUY" else "DeductedFromReturns", "percent": "0",
            "percent_token": None, "flat_fees": flat}


def _has_trade(db: sqlite3.Connection, market: str, symbol: str, exchange_trade_id: str) -> bool:
    """Exchange trade ids are a sequence per symbol: one fill is (market, symbol, exchange trade id)."""
    return db.execute("SELECT 1 FROM TradeFill WHERE market = ? AND symbol = ? AND exchange_trade_id = ?",
                      (market, symbol, exchange_trade_id)).fetchone() is not None


def _row_of_exchange_fill(fill, market: str, symbols: dict[str, str]) -> dict:
    base, quote = fill.symbol.split("/", 1)[0], fill.symbol.split("/", 1)[1].split(":")[0]
    pair = symbols.get(fill.symbol, fill.symbol)
    pair = pair if "-" in pair else f"{base}-{quote}"         # Hummingbot spells a pair BASE-QUOTE
    return {"market": market, "symbol": pair, "base_asset": base, "quote_asset": quote,
            "timestamp": fill.timestamp_ms, "order_id": fill.order_id or f"exchange-{fill.trade_id}",
            "trade_type": fill.side.upper(), "order_type": "LIMIT", "price": str(fill.price),
            "amount": str(fill.amount), "leverage": 1,
            "trade_fee": hummingbot_fee(fill.side, fill.fee_currency, fill.fee_cost),
            "trade_fee_in_quote": str(fill.fee_in_quote), "exchange_trade_id": fill.trade_id, "position": "NIL"}
