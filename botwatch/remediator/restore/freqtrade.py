"""Filling a restored Freqtrade database: the closed trades the fill mirror has and the backup lacks
(with their orders), the ones the backup still held open closed, and the bot's last open trades put back.
The procedure around it is restore/sqlite.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from botwatch.remediator.restore.mirror import read_mirror, read_open_trades
from botwatch.remediator.restore.csvfile import RestoreReport

# API field -> database column where the names differ (Trade.to_json / Order.to_json in Freqtrade)
TRADE_RENAMES = {"id": "trade_id", "stake_currency": "quote_currency", "stop_loss": "stop_loss_abs",
                 "stop_loss_pct": "stop_loss_ratio", "initial_stop_loss": "initial_stop_loss_abs",
                 "initial_stop_loss_pct": "initial_stop_loss_ratio"}
# orders: database column -> Order.to_json field, for every column the API shows (some twice: ft_amount and
# amount are both the order's amount; ft_price is the price Freqtrade placed it at, its safe_price)
ORDER_FIELDS = {"ft_order_side": "ft_order_side", "ft_pair": "pair", "symbol": "pair", "ft_is_open": "is_open",
                "ft_amount": "amount", "amount": "amount", "ft_price": "safe_price", "price": "price",
                "average": "average", "filled": "filled", "remaining": "remaining", "cost": "cost",
                "status": "status", "order_type": "order_type", "order_id": "order_id", "ft_fee_base": "ft_fee_base",
                "funding_fee": "funding_fee", "ft_order_tag": "ft_order_tag", "stop_price": "stop_price"}
ORDER_SIDES = ("buy", "sell", "stoploss")


def freqtrade_fill_in(mirror: Path | None) -> Callable:
    """Put back what the fill mirror has and the backup lacks: closed trades (with their orders), then the
    bot's last open trades."""
    def fill_in(path: Path, report: RestoreReport, manifest) -> None:
        trades = read_mirror(mirror) if mirror else []
        open_trades = read_open_trades(mirror) if mirror else []
        report.from_backup, report.replayed, reopened = replay(path, trades, open_trades, report.say)
        report.sources = {"the fill mirror": report.replayed}
        report.say(f"{report.from_backup} trades from the backup, {report.replayed} closed trades replayed from "
                   f"the mirror ({len(trades)} in it), {reopened} open trades put back")
    return fill_in


def replay(path: Path, trades: list[dict], open_trades: list[dict] = (),
           said: Callable[[str], None] = lambda text: None) -> tuple[int, int, int]:
    """Insert the mirrored closed trades (and their orders) the database lacks, and close the ones it still
    holds open (they closed after the backup); then put the bot's last open trades in place of the backup's
    older copies; (trades the backup had, closed trades replayed, open trades put back).

    A row the bot could not read is never written: each order is the backup's row whole with what the API
    says now laid over it (never a value it does not know); an open trade one of whose orders would still
    not be complete (side, price, amount: what Freqtrade rebuilds a dry-run or exchange order from) is left
    as the backup had it, or not put back, and `said` tells which."""
    # closed, not only committed: the restored copy is moved into place next, and a WAL-mode file must
    # have no write of ours left in its -wal by then
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.row_factory = sqlite3.Row
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
            if trade["trade_id"] in closed:           # closed since the list was taken: that record stands
                continue
            problem = _put(db, columns, trade, is_open=True)
            if problem is None:
                reopened += 1
            else:
                kept = "kept as the backup had it" if trade["trade_id"] in in_backup else "not put back"
                said(f"open trade {trade['trade_id']} ({trade.get('pair')}) {kept}: {problem}")
    return len(in_backup), replayed, reopened


def _put(db: sqlite3.Connection, columns: tuple[dict, dict], trade: dict, is_open: bool) -> str | None:
    """The trade and its orders as the API showed them over the backup's rows, in place of them; or, when
    an order would not be complete, nothing changed and why."""
    trade_id = trade["trade_id"]
    old_trade = db.execute("SELECT * FROM trades WHERE id = ?", (trade_id,)).fetchone()
    old_orders = {row["order_id"]: dict(row) for row in db.execute("SELECT * FROM orders WHERE ft_trade_id = ?",
                                                                    (trade_id,))}
    orders = [_over(old_orders.get(order.get("order_id"), {}), _order_values(order, trade))
              for order in trade.get("orders") or [] if isinstance(order, dict)]
    listed = {order.get("order_id") for order in orders}
    orders += [row for order_id, row in old_orders.items() if order_id not in listed]   # never dropped
    for order in orders:
        problem = _incomplete(order) if is_open else None
        if problem:
            return problem
    db.execute("DELETE FROM orders WHERE ft_trade_id = ?", (trade_id,))
    db.execute("DELETE FROM trades WHERE id = ?", (trade_id,))
    _insert(db, "trades", columns[0], _over(dict(old_trade) if old_trade else {}, _trade_values(trade, is_open)))
    for order in orders:
        order.pop("id", None)
        _insert(db, "orders", columns[1], order)
    return None


def _over(row: dict, values: dict) -> dict:
    """The backup's row with every value the API gave laid over it (a None from the API keeps the row's)."""
    return {**row, **{column: value for column, value in values.items() if value is not None}}


def _incomplete(order: dict) -> str | None:
    """Why Freqtrade could not manage this order row after a restart, or None (it rebuilds an open order
    from ft_order_side, price or ft_price, amount: a None there fails at every start)."""
    if order.get("ft_order_side") not in ORDER_SIDES:
        return f"order {order.get('order_id')!r} has no side ({order.get('ft_order_side')!r})"
    for column in ("ft_price", "ft_amount"):
        value = order.get(column)
        if not isinstance(value, (int, float)) or not value > 0:
            return f"order {order.get('order_id')!r} has no {column} ({value!r})"
    if order.get("ft_is_open") and (order.get("price") is None or order.get("amount") is None):
        return f"open order {order.get('order_id')!r} lacks its price or amount"
    if not order.get("order_id"):
        return "an order without an order_id"
    return None


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
    values = {column: order.get(field) for column, field in ORDER_FIELDS.items()}
    # the API's order (its OrderSchema) has no price nor average, only safe_price: the average once it has
    # fills, else the limit it was placed at — what Freqtrade rebuilds the order from (to_ccxt_object)
    safe = order.get("safe_price")
    values["price"] = values["price"] or safe
    values["ft_price"] = values["ft_price"] or values["price"]
    if values["average"] is None and (order.get("filled") or 0) > 0:
        values["average"] = safe
    side = order.get("ft_order_side")
    if side in ("buy", "sell"):
        values["side"] = side
    elif side == "stoploss":          # a stoploss order is on the exchange's side that exits the trade
        values["side"] = "buy" if trade.get("is_short") else "sell"
    values.update(ft_trade_id=trade["trade_id"], ft_is_open=bool(order.get("is_open")),
                  order_date=_db_date(order.get("order_timestamp")) or order.get("order_date"),
                  order_filled_date=_db_date(order.get("order_filled_timestamp")) or order.get("order_filled_date"))
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
