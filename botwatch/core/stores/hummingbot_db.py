"""Hummingbot's trade database (`data/<config stem>.sqlite`, table `TradeFill`) as a trade store.

Hummingbot (v2.2.0 and later) records one `TradeFill` row per fill. `price`, `amount` and
`trade_fee_in_quote` are `SqliteDecimal(6)` columns: integers, the value × 10⁶; `timestamp` is in
milliseconds; `trade_type` is BUY or SELL. The primary key is (`market`, `order_id`, `exchange_trade_id`),
and the table keeps SQLite's rowid, which grows in insert (fill) order: a check reads only the rows past
the last rowid it saw and feeds them, in that order, to the same average-cost book as a CSV file.

As for Freqtrade's database, a check costs two `stat`s while nothing changed, opens the file read-only
when it did, runs `PRAGMA quick_check`, checks the columns it reads, and finds impossible values in SQL.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from botwatch.core.book import BookSummary, Trade, TradeBook
from botwatch.core.stores.sqlite_check import Corrupt, SqliteStore
from botwatch.core.tradefile import FUTURE_TOLERANCE

SCALE = 10 ** 6            # SqliteDecimal(6)
TABLE = "TradeFill"
SCHEMA = {TABLE: ("market", "symbol", "timestamp", "order_id", "trade_type", "price", "amount",
                  "trade_fee_in_quote", "exchange_trade_id")}
KEY = ("market", "order_id", "exchange_trade_id")      # Hummingbot's primary key: one fill
FILL_COLUMNS = "rowid, timestamp, exchange_trade_id, symbol, trade_type, price, amount, trade_fee_in_quote"
IMPOSSIBLE = ("price IS NULL OR price <= 0 OR amount IS NULL OR amount <= 0 OR trade_fee_in_quote IS NULL "
              "OR trade_fee_in_quote < 0 OR timestamp IS NULL OR timestamp <= 0 "
              "OR trade_type NOT IN ('BUY', 'SELL') OR typeof(price) != 'integer' OR typeof(amount) != 'integer'")
READ_BATCH = 5000


def fill_of(timestamp_ms, trade_id, symbol, trade_type, price, amount, fee) -> Trade:
    """A TradeFill row's values as a fill (scaled integers back to numbers, ms to seconds)."""
    return Trade(timestamp_ms / 1000, str(trade_id), symbol, trade_type.lower(), price / SCALE, amount / SCALE,
                 fee / SCALE)


class HummingbotStore(SqliteStore):
    SCHEMA = SCHEMA

    def __init__(self, path: Path | str, starting_balance: float = 0.0, name: str = "",
                 clock: Callable[[], float] = time.time):
        self.clock = clock
        self.book = TradeBook(starting_balance)
        super().__init__(path, name)

    def _forget(self) -> None:
        self._first_fill: tuple | None = None     # (rowid, market, order_id, exchange_trade_id): the history's identity
        self._forget_fills()

    def _forget_fills(self) -> None:
        self.book.reset()
        self._max_rowid = 0
        self._rows = 0
        self._last_ts = 0            # ms of the newest fill read
        self._first: Trade | None = None
        self._last: Trade | None = None

    def _counts(self) -> tuple[int, int, float | None]:
        return self._rows, self.book.trades, self._last_ts / 1000 if self._last_ts else None

    # -- the interface ---------------------------------------------------------------------------------

    def summary(self, marks: dict[str, float] | None = None, unrealized: float | None = None) -> BookSummary:
        return self.book.summary(marks)

    def symbols(self) -> list[str]:
        return sorted(self.book.positions)

    @property
    def ends(self) -> tuple[Trade | None, Trade | None]:
        """The first and the last fill read (for backup manifests)."""
        return self._first, self._last

    # -- reading ---------------------------------------------------------------------------------------

    def _read_rows(self, connection: sqlite3.Connection) -> None:
        self._read_fills(connection)

    def _read_fills(self, connection: sqlite3.Connection) -> None:
        first = connection.execute(f"SELECT rowid, {', '.join(KEY)} FROM {TABLE} ORDER BY rowid LIMIT 1").fetchone()
        rows, max_rowid = connection.execute(f"SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM {TABLE}").fetchone()
        if self._first_fill is not None and (first is None or first[0] < self._first_fill[0]
                                             or (first[0] == self._first_fill[0] and first != self._first_fill)):
            raise Corrupt("replaced", f"the first fill is now {first}, was {self._first_fill}")
        if max_rowid < self._max_rowid or rows < self._rows:
            self._forget_fills()          # fills were deleted: the book is built again from what is left
        self._first_fill = first
        bad = connection.execute(f"SELECT rowid, {', '.join(KEY)}, price, amount, trade_fee_in_quote, timestamp, "
                                 f"trade_type FROM {TABLE} WHERE rowid > ? AND ({IMPOSSIBLE}) ORDER BY rowid LIMIT 1",
                                 (self._max_rowid,)).fetchone()
        if bad:
            raise Corrupt("values", f"fill {bad[1:4]}: {_impossible(*bad[4:])}")
        future = (self.clock() + FUTURE_TOLERANCE) * 1000
        cursor = connection.execute(f"SELECT {FILL_COLUMNS} FROM {TABLE} WHERE rowid > ? ORDER BY rowid",
                                    (self._max_rowid,))
        while batch := cursor.fetchmany(READ_BATCH):
            for rowid, timestamp, *rest in batch:
                if timestamp > future:
                    raise Corrupt("values", f"fill at rowid {rowid}: timestamp {timestamp} ms is in the future")
                fill = fill_of(timestamp, *rest)
                self.book.add(fill)
                self._first = self._first or fill
                self._last = fill
                self._last_ts = max(self._last_ts, timestamp)
                self._max_rowid = rowid
        self._rows = rows


def _impossible(price, amount, fee, timestamp, trade_type) -> str:
    if not isinstance(price, int) or price <= 0:
        return f"price {price!r} (an integer × 10⁶ above 0)"
    if not isinstance(amount, int) or amount <= 0:
        return f"amount {amount!r} (an integer × 10⁶ above 0)"
    if fee is None or fee < 0:
        return f"trade_fee_in_quote {fee!r}"
    if timestamp is None or timestamp <= 0:
        return f"timestamp {timestamp!r}"
    return f"trade_type {trade_type!r} (BUY or SELL)"
