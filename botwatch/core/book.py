"""P&L by average cost, per symbol, fed one fill at a time (the rules: README, "P&L").

A fill that adds to a position moves its average entry; a fill that reduces it realizes
(fill price - average entry) x closed qty for a long, the opposite for a short; a fill larger than the
position closes it and opens the other side at the fill price. Realized P&L is the sum of closed
gains minus every fee paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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
        signed = trade.qty if trade.side == "buy" else -trade.qty
        self.fees += trade.fee
        self.trades += 1
        pos.last_price = trade.price
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = abs(pos.qty) + trade.qty
            pos.avg_entry = (pos.avg_entry * abs(pos.qty) + trade.price * trade.qty) / total
            pos.qty += signed
            return
        closed = min(trade.qty, abs(pos.qty))
        direction = 1.0 if pos.qty > 0 else -1.0
        self.closed_gains += (trade.price - pos.avg_entry) * closed * direction
        pos.qty += signed
        if abs(pos.qty) <= _DUST * trade.qty:
            pos.qty, pos.avg_entry = 0.0, 0.0
        elif (pos.qty > 0) != (direction > 0):
            pos.avg_entry = trade.price  # flipped: the rest opens the other side at the fill price

    @property
    def realized(self) -> float:
        return self.closed_gains - self.fees

    def unrealized(self, marks: dict[str, float] | None = None) -> float:
        """(mark - average entry) x position over all symbols; mark defaults to the last fill price."""
        marks = marks or {}
        return sum((marks.get(symbol, pos.last_price) - pos.avg_entry) * pos.qty
                   for symbol, pos in self.positions.items() if pos.qty)

    def summary(self, marks: dict[str, float] | None = None) -> BookSummary:
        unrealized = self.unrealized(marks)
        return BookSummary(
            realized=self.realized,
            unrealized=unrealized,
            equity=self.starting_balance + self.realized + unrealized,
            positions={symbol: pos.qty for symbol, pos in self.positions.items()},
            trades=self.trades,
        )
