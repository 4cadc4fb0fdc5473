"""The restore procedure for a Freqtrade database: stop, quarantine (the database and its -wal/-shm),
restore the newest good backup, insert the closed trades the fill mirror has and the backup lacks, check,
replace, start, verify.

The -wal and -shm go with the database: a write-ahead log left beside a restored file would be replayed
into it. As for CSV files, nothing is touched without a good backup, nothing is ever deleted or
overwritten, and the restored file must pass `PRAGMA integrity_check` and the exporter's own check before
it replaces anything.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot
from remediator.backup import BackupStore
from remediator.mirror import read_mirror, read_open_trades
from remediator.restore import RestoreFailed, RestoreReport, move_into_place, newest_backup, quarantine, write_temp
from remediator.sqlite_backup import check_database_file

# API field -> database column where the names differ (Trade.to_json / Order.to_json in Freqtrade)
TRADE_RENAMES = {"id": "trade_id", "stake_currency": "quote_currency", "stop_loss": "stop_loss_abs",
                 "stop_loss_pct": "stop_loss_ratio", "initial_stop_loss": "initial_stop_loss_abs",
                 "initial_stop_loss_pct": "initial_stop_loss_ratio"}
ORDER_RENAMES = {"ft_pair": "pair", "ft_is_open": "is_open", "ft_amount": "amount", "ft_price": "price",
                 "symbol": "pair", "side": "ft_order_side"}


def restore_database(bot: Bot, store: BackupStore | None, runtime, check_alive: Callable, mirror: Path | None,
                     clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                     verify_after: float = 5.0, fill_in: Callable | None = None) -> RestoreReport:
    """The whole procedure for an SQLite trade database; `fill_in(path, report, backup_manifest)` puts the
    fills the backup lacks into the restored copy (default: Freqtrade's mirror of closed and open trades)."""
    report = RestoreReport(bot.name)
    good = newest_backup(bot, store, clock, report)
    if good is None:
        raise RestoreFailed(f"no good backup of the database: nothing touched ({report.detail or 'no backups'})")
    fill_in = fill_in or _freqtrade_fill_in(mirror)
    report.backup = good[0].name
    report.say(f"restoring from backup {good[0].name}")

    runtime.stop()
    report.say("bot stopped")
    moved = [quarantine(Path(f"{bot.data_file}{suffix}"), clock()) for suffix in ("", "-wal", "-shm")]
    report.quarantine = moved[0]
    report.say("kept aside: " + (", ".join(m.name for m in moved if m) or "nothing (already moved)"))

    tmp = write_temp(bot.data_file, good[1])
    try:
        fill_in(tmp, report, good[0])
    except sqlite3.Error as err:
        raise RestoreFailed(f"replaying the missing fills into the backup failed: {err}; data file moved aside, "
                            "bot stopped") from None
    valid, rows, _, _, problem = check_database_file(tmp, bot.name, bot.store)
    if not valid:
        raise RestoreFailed(f"the restored database does not validate ({problem}); data file moved aside, bot stopped")
    report.rows = rows
    report.say(f"{rows} rows validate")
    move_into_place(tmp, bot.data_file)
    report.say(f"{bot.data_file.name} replaced")

    runtime.start()
    report.say("bot started")
    sleep(verify_after)
    alive = check_alive()
    if not alive.up:
        raise RestoreFailed(f"database restored ({rows} rows) but the bot is not up: {alive.detail}")
    report.say("verified: bot up")
    return report


def _freqtrade_fill_in(mirror: Path | None) -> Callable:
    def fill_in(path: Path, report: RestoreReport, manifest) -> None:
        trades = read_mirror(mirror) if mirror else []
        open_trades = read_open_trades(mirror) if mirror else []
        report.from_backup, report.replayed, reopened = replay(path, trades, open_trades)
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
