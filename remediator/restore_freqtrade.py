"""Filling a restored Freqtrade database: the closed trades the fill mirror has and the backup lacks
(with their orders), the ones the backup still held open closed, and the bot's last open trades put back.
The procedure around it is remediator/restore_sqlite.py.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from remediator.mirror import read_mirror, read_open_trades
from remediator.restore import RestoreReport

# API field -> database column where the names differ (Trade.to_json / Order.to_json in Freqtrade)
TRADE_RENAMES = {"id": "trade_id", "stake_currency": "quote_currency", "stop_loss": "stop_loss_abs",
                 "stop_loss_pct": "stop_loss_ratio", "initial_stop_loss": "initial_stop_loss_abs",
                 "initial_stop_loss_pct": "initial_stop_loss_ratio"}
ORDER_RENAMES = {"ft_pair": "pair", "ft_is_open": "is_open", "ft_amount": "amount", "ft_price": "price",
                 "symbol": "pair", "side": "ft_order_side"}


def freqtrade_fill_in(mirror: Path | None) -> Callable:
    """Put back what the fill mirror has and the backup lacks: closed trades (with their orders), then the
    bot's last open trades."""
    def fill_in(path: Path, report: RestoreReport, manifest) -> None:
        trades = read_mirror(mirror) if mirror else []
        open_trades = read_open_trades(mirror) if mirror else []
        report.from_backup, report.replayed, reopened = replay(path, trades, open_trades)
        report.sources = {"the fill mirror": report.replayed}
        report.say(f"{report.from_backup} trades from the backup, {report.replayed} closed trades replayed from "
                   f"the mirror ({len(trades)} in it), {reopened} open trades put back")
    return fill_in


def replay(path: Path, trades: list[dict], open_trades: list[dict] = ()) -> tuple[int, int, int]:
    """Insert the mirrored closed trades (and their orders) the database lacks, and close the ones it still
    holds open (they closed after the backup); then put the bot's last open trades in place of the backup's
    older copies; (trades the backup had, closed trades replayed, open trades put back)."""
    with sqlite3.connect(path) as db:
        columns = _columns(db, "trades"), _columns(db, "orders")
        in_backup = {row[0]: row[1] for row in db.execute("SELECT id, is_open FROM trades")}
        closed = {trade_id for trade_id, is_open in in_backup.items() if not is_open}
        replayed = reopened = 0
        for trade in trades:
            if trade["trade_id"] not in closed:      # missing, or open at the backup and closed since
                _put(db, columns, trade, is_open=False)
                closed.add(trade["trade_id"])
                replayed += 1
        for trade in open_trades:
            if trade["trade_id"] not in closed:      # else closed since the list was taken: that record stands
                _put(db, columns, trade, is_open=True)
                reopened += 1
    return len(in_backup), replayed, reopened


def _put(db: sqlite3.Connection, columns: tuple[dict, dict], trade: dict, is_open: bool) -> None:
    """The trade and its orders as the API showed them, in place of any older copy of the same trade."""
    db.execute("DELETE FROM orders WHERE ft_trade_id = ?", (trade["trade_id"],))
    db.execute("DELETE FROM trades WHERE id = ?", (trade["trade_id"],))
    _insert(db, "trades", columns[0], _trade_values(trade, is_open))
    for order in trade.get("orders") or []:
        if isinstance(order, dict):
            _insert(db, "orders", columns[1], _order_values(order, trade))


def _columns(db: sqlite3.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """column -> (declared type, NOT NULL) of every column of the table."""
    return {row[1]: (row[2].upper(), bool(row[3])) for row in db.execute(f"PRAGMA table_info({table})")}


def _trade_values(trade: dict, is_open: bool = False) -> dict:
    values = {column: trade.get(field) for column, field in TRADE_RENAMES.items()}
    values.update({k: v for k, v in trade.items() if k not in TRADE_RENAMES.values() and not isinstance(v, (dict, list))})
    values["open_date"] = _db_date(trade.get("open_timestamp")) or trade.get("open_date")
    values["close_date"] = _db_date(trade.get("close_timestamp")) or trade.get("close_date")
    values["is_open"] = is_open
    if isinstance(values.get("trading_mode"), str):      # an Enum column: stored by name (SPOT), shown by value
        values["trading_mode"] = values["trading_mode"].upper()
    return values


def _order_values(order: dict, trade: dict) -> dict:
    values = {column: order.get(field) for column, field in ORDER_RENAMES.items()}
    values.update({k: v for k, v in order.items() if k not in ORDER_RENAMES.values()})
    values.update(ft_trade_id=trade["trade_id"], is_open=None, ft_is_open=bool(order.get("is_open")),
                  order_date=_db_date(order.get("order_timestamp")) or order.get("order_date"),
                  order_filled_date=_db_date(order.get("order_filled_timestamp")) or order.get("order_filled_date"))
    values.pop("id", None)
    return values


def _insert(db: sqlite3.Connection, table: str, columns: dict[str, tuple[str, bool]], values: dict) -> None:
    row = {}
    for column, (kind, not_null) in columns.items():
        value = values.get(column)
        if value is None and not_null and column != "id":
            value = "" if any(t in kind for t in ("CHAR", "TEXT", "CLOB")) else 0
        if value is not None or column != "id":
            row[column] = value
    names = ", ".join(row)
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _db_date(milliseconds) -> str | None:
    """Freqtrade's stored spelling of a moment: naive UTC with microseconds."""
    if not isinstance(milliseconds, (int, float)) or isinstance(milliseconds, bool):
        return None
    moment = datetime.fromtimestamp(milliseconds / 1000, timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
