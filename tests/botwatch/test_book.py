"""P&L by average cost, worked by hand: a partial close, a flip from long to short, a short covered,
fees, and two symbols."""

import pytest

from botwatch.core.book import Trade, TradeBook


def fill(symbol, side, price, qty, fee):
    return Trade(0.0, "x", symbol, side, price, qty, fee)


SEQUENCE = [
    fill("BTC/USDT", "buy", 100, 2, 0.2),     # long 2 @ 100
    fill("BTC/USDT", "buy", 110, 2, 0.22),    # long 4 @ 105
    fill("BTC/USDT", "sell", 120, 1, 0.12),   # partial close: +15, long 3 @ 105
    fill("BTC/USDT", "sell", 100, 5, 0.5),    # close 3: -15, flip: short 2 @ 100
    fill("BTC/USDT", "buy", 90, 1, 0.09),     # cover 1: +10, short 1 @ 100
    fill("BTC/USDT", "buy", 95, 1, 0.095),    # cover the rest: +5, flat
    fill("ETH/USDT", "sell", 50, 1, 0.05),    # short 1 @ 50
]


def book_after(trades, starting_balance=1000.0) -> TradeBook:
    book = TradeBook(starting_balance)
    for trade in trades:
        book.add(trade)
    return book


def test_the_hand_worked_sequence():
    book = book_after(SEQUENCE)
    fees = 0.2 + 0.22 + 0.12 + 0.5 + 0.09 + 0.095 + 0.05
    assert book.closed_gains == pytest.approx(15 - 15 + 10 + 5)
    assert book.realized == pytest.approx(15 - fees)
    summary = book.summary({"ETH/USDT": 40})
    assert summary.positions == {"BTC/USDT": 0.0, "ETH/USDT": -1.0}
    assert summary.unrealized == pytest.approx(10)            # a short gains as the price falls
    assert summary.equity == pytest.approx(1000 + 15 - fees + 10)
    assert summary.trades == 7


@pytest.mark.parametrize("upto, position, avg", [(2, 4, 105), (3, 3, 105), (4, -2, 100), (5, -1, 100), (6, 0, 0)])
def test_position_and_average_entry_along_the_way(upto, position, avg):
    pos = book_after(SEQUENCE[:upto]).positions["BTC/USDT"]
    assert pos.qty == pytest.approx(position) and pos.avg_entry == pytest.approx(avg)


def test_unrealized_marks_at_the_last_fill_without_a_mark_price():
    book = book_after([fill("DOGE/USDT", "buy", 0.10, 1000, 0), fill("DOGE/USDT", "buy", 0.12, 1000, 0)])
    assert book.unrealized() == pytest.approx((0.12 - 0.11) * 2000)


def test_float_dust_from_a_full_close_leaves_the_position_flat():
    book = book_after([fill("X", "buy", 1, 0.1, 0), fill("X", "buy", 1, 0.2, 0), fill("X", "sell", 2, 0.3, 0)])
    assert book.positions["X"].qty == 0 and book.positions["X"].avg_entry == 0
    assert book.realized == pytest.approx(0.3)


def test_reset_forgets_everything():
    book = book_after(SEQUENCE)
    book.reset()
    assert book.summary().equity == 1000 and book.trades == 0
