"""P&L by average cost, per symbol, fed one fill at a time (the rules: README, "P&L").

A fill that adds to a position moves its average entry; a fill that reduces it realizes
(fill price - average entry) x closed qty for a long, the opposite for a short; a fill larger than the
position closes it and opens the other side at the fill price. Realized P&L is the sum of closed
gains minus every fee paid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np

from botwatch.core.exposure import Exposure, one_quote

# A position smaller than this fraction of the fill that left it is float dust from a full close.
_DUST = 1e-9


class Trade(NamedTuple):
    """One fill, as a row of the trade file says it."""

    timestamp: float
    trade_id: str
    symbol: str
    side: str  # "buy" or "sell"
    price: float
    qty: float
    fee: float


@dataclass
class Position:
    qty: float = 0.0          # signed: negative is short
    avg_entry: float = 0.0
    last_price: float = 0.0


@dataclass(frozen=True)
class BookSummary:
    realized: float
    unrealized: float
    equity: float
    positions: dict[str, float]
    trades: int
    exposure: tuple[Exposure, ...] = ()     # the open positions, valued (botwatch.core.exposure)
    quote: str = ""          # the quote currency of every symbol it has traded ("" before its first, or mixed)


def fold_fills(qty: float, avg_entry: float, buys: Iterable[bool], prices: Iterable[float],
               qtys: Iterable[float], gains: list[float]) -> tuple[float, float]:
    """One symbol's position and average entry after its fills, in order; each fill's closed gain
    (0.0 for a fill that adds) is appended to `gains`. The one place the average-cost rules are computed."""
    for buy, price, fill_qty in zip(buys, prices, qtys):
        signed = fill_qty if buy else -fill_qty
        if qty == 0 or (qty > 0) == (signed > 0):
            total = abs(qty) + fill_qty
            avg_entry = (avg_entry * abs(qty) + price * fill_qty) / total
            qty += signed
            gains.append(0.0)
            continue
        closed = min(fill_qty, abs(qty))
        direction = 1.0 if qty > 0 else -1.0
        gains.append((price - avg_entry) * closed * direction)
        qty += signed
        if abs(qty) <= _DUST * fill_qty:
            qty, avg_entry = 0.0, 0.0
        elif (qty > 0) != (direction > 0):
            avg_entry = price  # flipped: the rest opens the other side at the fill price
    return qty, avg_entry


class TradeBook:
    """Running average-cost P&L over a stream of fills; O(symbols) state."""

    def __init__(self, starting_balance: float = 0.0):
        self.starting_balance = starting_balance
        self.reset()

    def reset(self) -> None:
        self.positions: dict[str, Position] = {}
        self.closed_gains = 0.0
        self.fees = 0.0
        self.trades = 0

    def add(self, trade: Trade) -> None:
        pos = self.positions.get(trade.symbol)
        if pos is None:
            pos = self.positions[trade.symbol] = Position()
        gains: list[float] = []
        pos.qty, pos.avg_entry = fold_fills(pos.qty, pos.avg_entry, (trade.side == "buy",), (trade.price,),
                                            (trade.qty,), gains)
        pos.last_price = trade.price
        self.fees += trade.fee
        self.closed_gains += gains[0]
        self.trades += 1

    def add_columns(self, names: list[str], codes: np.ndarray, buys: np.ndarray, prices: np.ndarray,
                    qtys: np.ndarray, fees: np.ndarray) -> None:
        """Add many fills at once, in row order (row i's symbol is names[codes[i]]): the same numbers, to
        the last bit, as `add` one fill at a time."""
        if not len(codes):
            return
        gains = np.zeros(len(codes))
        present, first = np.unique(codes, return_index=True)
        for code in present[np.argsort(first)].tolist():       # in order of first appearance, as `add` makes them
            symbol = names[code]
            rows = np.flatnonzero(codes == code)
            pos = self.positions.get(symbol)
            if pos is None:
                pos = self.positions[symbol] = Position()
            symbol_gains: list[float] = []
            pos.qty, pos.avg_entry = fold_fills(pos.qty, pos.avg_entry, buys[rows].tolist(), prices[rows].tolist(),
                                                qtys[rows].tolist(), symbol_gains)
            pos.last_price = float(prices[rows[-1]])
            gains[rows] = symbol_gains
        # running sums in row order (cumsum adds one at a time, as `add` does; np.sum would not)
        self.fees = float(np.cumsum(np.concatenate(([self.fees], fees)))[-1])
        self.closed_gains = float(np.cumsum(np.concatenate(([self.closed_gains], gains)))[-1])
        self.trades += len(codes)

    def state(self) -> dict:
        """The book as JSON-able values (floats round-trip exactly through JSON)."""
        return {"positions": [[symbol, p.qty, p.avg_entry, p.last_price] for symbol, p in self.positions.items()],
                "closed_gains": self.closed_gains, "fees": self.fees, "trades": self.trades}

    def restore(self, state: dict) -> None:
        """The book `state()` described; raises ValueError/TypeError/KeyError on anything else."""
        def finite(value) -> float:
            if type(value) not in (int, float) or not math.isfinite(value):
                raise ValueError(f"{value!r} is not a finite number")
            return float(value)

        positions = {}
        for symbol, qty, avg_entry, last_price in state["positions"]:
            if not isinstance(symbol, str):
                raise ValueError(f"{symbol!r} is not a symbol")
            positions[symbol] = Position(finite(qty), finite(avg_entry), finite(last_price))
        closed_gains, fees = finite(state["closed_gains"]), finite(state["fees"])
        if type(state["trades"]) is not int or state["trades"] < 0:
            raise ValueError("trades is not a count")
        self.positions = positions
        self.closed_gains, self.fees, self.trades = closed_gains, fees, state["trades"]

    @property
    def realized(self) -> float:
        return self.closed_gains - self.fees

    def unrealized(self, marks: dict[str, float] | None = None) -> float:
        """(mark - average entry) x position over all symbols; mark defaults to the last fill price."""
        marks = marks or {}
        return sum((marks.get(symbol, pos.last_price) - pos.avg_entry) * pos.qty
                   for symbol, pos in self.positions.items() if pos.qty)

    def summary(self, marks: dict[str, float] | None = None) -> BookSummary:
        marks = marks or {}
        unrealized = self.unrealized(marks)
        return BookSummary(
            realized=self.realized,
            unrealized=unrealized,
            equity=self.starting_balance + self.realized + unrealized,
            positions={symbol: pos.qty for symbol, pos in self.positions.items()},
            trades=self.trades,
            # fills only: whether a stop waits on the exchange is not in them
            exposure=tuple(Exposure(symbol, pos.qty, pos.avg_entry, marks.get(symbol, pos.last_price), None)
                           for symbol, pos in self.positions.items() if pos.qty),
            quote=one_quote(self.positions),
        )
