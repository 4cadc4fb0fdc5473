"""Freqtrade's trade database (`tradesv3.sqlite`, `tradesv3.dryrun.sqlite`) as a trade store.

A check costs two `stat`s (the file, and its `-wal` where a WAL writer's changes show first) while nothing
changed. After a change it opens the database read-only, runs `PRAGMA quick_check`, checks the tables and
columns this store reads, and reads only the trades and orders that are new or were open at the last check
(Freqtrade updates a trade row when it closes; closed ones stay as they are). Realized P&L is Freqtrade's
own: Σ `close_profit_abs` of closed trades + `realized_profit` of open ones (partial exits); positions are
the open trades' amounts, negative when short. A file found corrupt stays corrupt until it changes and
validates from scratch.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from botwatch.core.book import BookSummary, Trade
from botwatch.core.exposure import Exposure, one_quote
from botwatch.core.stores.sqlite_check import CHECKS as SQLITE_CHECKS
from botwatch.core.stores.sqlite_check import Corrupt, SqliteStore, connect_ro

CHECKS = SQLITE_CHECKS
SCHEMA = {
    "trades": ("id", "pair", "is_open", "amount", "open_rate", "close_rate", "open_date", "close_date",
               "close_profit_abs", "realized_profit", "is_short"),
    "orders": ("id", "ft_trade_id", "ft_is_open", "ft_order_side", "side", "filled", "average", "price", "status",
               "order_filled_date"),
}
# id, pair, then the columns _impossible() reads, in its order
TRADE_COLUMNS = "id, pair, is_open, amount, open_rate, close_rate, open_date, close_date, close_profit_abs"
# Freqtrade's own invariants (freqtradebot.execute_entry, Trade.recalc_trade_from_orders, Trade.close):
# a trade is created open with `amount 0` and `open_rate` the entry limit price, and gets its amount only
# as its entry order fills (a limit entry, Freqtrade's default, can wait minutes); an entry cancelled with
# no fill deletes the trade. So an open trade has amount >= 0 (0: no fill yet), a closed one amount > 0
# and a close_rate, close_profit_abs and close_date not before open_date; open_rate is > 0 throughout.
# The same rules as _impossible(), for SQLite to find the first offending row (dates compare as text:
# Freqtrade writes them all as 'YYYY-MM-DD HH:MM:SS.ffffff').
IMPOSSIBLE = ("amount IS NULL OR amount < 0 OR open_rate IS NULL OR open_rate <= 0 OR (NOT is_open AND "
              "(amount <= 0 OR close_rate IS NULL OR close_rate <= 0 OR close_profit_abs IS NULL "
              "OR close_date IS NULL OR close_date < open_date))")


class FreqtradeStore(SqliteStore):
    SCHEMA = SCHEMA

    def __init__(self, path: Path | str, starting_balance: float = 0.0, name: str = ""):
        self.starting_balance = starting_balance
        super().__init__(path, name)

    @property
    def ends(self) -> tuple[Trade | None, Trade | None]:
        """The first and the last trade (for backup manifests): their opening fills."""
        connection = connect_ro(self.path)
        try:
            first = connection.execute("SELECT id, open_date, pair, amount, open_rate FROM trades ORDER BY id LIMIT 1"
                                       ).fetchone()
            last = connection.execute("SELECT id, open_date, pair, amount, open_rate FROM trades "
                                      "ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            connection.close()
        return _trade(first), _trade(last)

    def _forget(self) -> None:
        self._first_trade: tuple | None = None       # (id, pair, open_date) of the lowest id: the history's identity
        self._max_trade_id = 0
        # id -> (pair, signed amount, realized_profit, open_rate)
        self._open: dict[int, tuple[str, float, float, float]] = {}
        self._stops: dict[int, int] = {}          # open stoploss order id -> its trade's id
        self._pairs: set[str] = set()             # every pair it has traded
        self._closed_profit = 0.0
        self._closed = 0
        self._rows = 0
        self._max_order_id = 0
        self._open_orders: set[int] = set()
        self._fills = 0
        self._last_fill: float | None = None

    def _counts(self) -> tuple[int, int, float | None]:
        return self._rows, self._fills, self._last_fill

    # -- the interface ---------------------------------------------------------------------------------

    def summary(self, marks: dict[str, float] | None = None, unrealized: float | None = None) -> BookSummary:
        realized = self._closed_profit + sum(profit for _, _, profit, _ in self._open.values())
        positions: dict[str, float] = {}
        for pair, amount, _, _ in self._open.values():
            positions[pair] = positions.get(pair, 0.0) + amount
        unrealized = unrealized or 0.0      # only the bot knows its marks: from its API, else none
        marks = marks or {}
        protected = set(self._stops.values())
        exposure = tuple(Exposure(pair, amount, rate, marks.get(pair, rate), trade_id in protected)
                         for trade_id, (pair, amount, _, rate) in sorted(self._open.items()) if amount)
        return BookSummary(realized, unrealized, self.starting_balance + realized + unrealized,
                           {pair: round(amount, 12) for pair, amount in positions.items()}, self._fills, exposure,
                           one_quote(self._pairs))

    def symbols(self) -> list[str]:
        return sorted({pair for pair, _, _, _ in self._open.values()})

    # -- reading ---------------------------------------------------------------------------------------

    def _read_rows(self, connection: sqlite3.Connection) -> None:
        self._read_trades(connection)
        self._read_orders(connection)

    def _read_trades(self, connection: sqlite3.Connection) -> None:
        first = connection.execute("SELECT id, pair, open_date FROM trades ORDER BY id LIMIT 1").fetchone()
        rows, max_id = connection.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM trades").fetchone()
        if self._first_trade is not None and (first is None or first[0] < self._first_trade[0]
                                              or (first[0] == self._first_trade[0] and first != self._first_trade)):
            raise Corrupt("replaced", f"the first trade is now {first}, was {self._first_trade}")
        if max_id < self._max_trade_id or rows < self._rows:
            self._forget_trades()            # trades were deleted (Freqtrade's delete): count them again
        self._first_trade, self._rows = first, rows
        # only rows new since the last check or open at it (Freqtrade updates a trade row when it closes);
        # the ids in the IN list are integers read from the database itself, never input
        changed = f"(id > {int(self._max_trade_id)} OR id IN (-1{''.join(f', {int(i)}' for i in self._open)}))"
        bad = connection.execute(f"SELECT {TRADE_COLUMNS} FROM trades WHERE {changed} AND ({IMPOSSIBLE}) "
                                 "ORDER BY id LIMIT 1").fetchone()
        if bad:
            raise Corrupt("values", f"trade {bad[0]} ({bad[1]}): {_impossible(*bad[2:])}")
        profit, closed = connection.execute(f"SELECT COALESCE(SUM(close_profit_abs), 0), COUNT(*) FROM trades "
                                            f"WHERE {changed} AND NOT is_open").fetchone()
        self._open = {trade_id: (pair, -amount if is_short else amount, realized or 0.0, rate)
                      for trade_id, pair, amount, realized, is_short, rate in connection.execute(
                          f"SELECT id, pair, amount, realized_profit, is_short, open_rate FROM trades "
                          f"WHERE {changed} AND is_open")}
        self._pairs.update(pair for (pair,) in connection.execute(f"SELECT DISTINCT pair FROM trades WHERE {changed}"))
        self._closed_profit += profit
        self._closed += closed
        self._max_trade_id = max_id

    def _forget_trades(self) -> None:
        self._max_trade_id, self._open, self._closed_profit, self._closed = 0, {}, 0.0, 0

    def _read_orders(self, connection: sqlite3.Connection) -> None:
        changed = f"(id > {int(self._max_order_id)} OR id IN (-1{''.join(f', {int(i)}' for i in self._open_orders)}))"
        fills, last = connection.execute(f"SELECT COUNT(*), MAX(order_filled_date) FROM orders WHERE {changed} "
                                         "AND NOT ft_is_open AND filled > 0").fetchone()
        opened = connection.execute(f"SELECT id, ft_trade_id, ft_order_side FROM orders WHERE {changed} "
                                    "AND ft_is_open").fetchall()
        for order_id in self._open_orders - {row[0] for row in opened}:
            self._stops.pop(order_id, None)                 # closed (filled, cancelled) or gone
        self._stops.update({order_id: trade_id for order_id, trade_id, side in opened if side == "stoploss"})
        self._open_orders = {row[0] for row in opened}
        self._max_order_id = connection.execute("SELECT COALESCE(MAX(id), 0) FROM orders").fetchone()[0]
        self._fills += fills
        when = _utc(last)
        if when is not None and (self._last_fill is None or when > self._last_fill):
            self._last_fill = when


def _impossible(is_open, amount, open_rate, close_rate, open_date, close_date, close_profit_abs, *_) -> str | None:
    if amount is None or not amount >= 0:
        return f"amount {amount!r}"
    if open_rate is None or not open_rate > 0:
        return f"open_rate {open_rate!r}"
    if is_open:
        return None           # amount 0: its entry order has not filled yet
    if not amount > 0:
        return f"closed with amount {amount!r}"
    if close_rate is None or not close_rate > 0:
        return f"closed with close_rate {close_rate!r}"
    if close_profit_abs is None:
        return "closed without close_profit_abs"
    opened, closed = _utc(open_date), _utc(close_date)
    if opened is None or closed is None or closed < opened:
        return f"closed at {close_date!r}, opened at {open_date!r}"
    return None


def _utc(text) -> float | None:
    """Freqtrade's naive UTC dates ('2026-11-20 00:08:00.000000') as Unix seconds."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _trade(row) -> Trade | None:
    if row is None:
        return None
    trade_id, opened, pair, amount, rate = row
    when = datetime.fromisoformat(opened).replace(tzinfo=timezone.utc).timestamp()
    return Trade(when, str(trade_id), pair, "buy", rate, amount, 0.0)
