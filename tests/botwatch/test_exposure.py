"""Money at risk from a bot's own records: positions valued at the last known price, protection where known."""

import pytest

from botwatch.core.book import Trade, TradeBook
from botwatch.core.exposure import Exposure, quote_of, totals, words


@pytest.mark.parametrize("symbol, quote", [("BTC/USDT", "USDT"), ("BTC/USDT:USDT", "USDT"), ("ETH-BTC", "BTC"),
                                           ("DOGEUSDT", "USDT"), ("XBTEUR", "EUR"), ("WEIRD", "")])
def test_the_quote_currency_of_a_symbol_as_bots_write_it(symbol, quote):
    assert quote_of(symbol) == quote


def test_a_book_values_its_open_positions_at_the_mark_and_cannot_say_whether_they_are_protected():
    book = TradeBook(1000)
    for trade in (Trade(1, "1", "BTC/USDT", "buy", 100.0, 2.0, 0.0), Trade(2, "2", "BTC/USDT", "buy", 110.0, 2.0, 0.0),
                  Trade(3, "3", "ETH/USDT", "sell", 10.0, 5.0, 0.0), Trade(4, "4", "SOL/USDT", "buy", 5.0, 1.0, 0.0),
                  Trade(5, "5", "SOL/USDT", "sell", 6.0, 1.0, 0.0)):
        book.add(trade)
    exposure = book.summary({"BTC/USDT": 120.0}).exposure        # ETH at its last fill; SOL closed: not there
    assert exposure == (Exposure("BTC/USDT", 4.0, 105.0, 120.0, None), Exposure("ETH/USDT", -5.0, 10.0, 10.0, None))
    assert [e.notional for e in exposure] == [480.0, 50.0]
    assert [e.unrealized for e in exposure] == [60.0, 0.0] and [e.side for e in exposure] == ["long", "short"]
    t = totals(exposure)
    assert (t.positions, t.exposure, t.unprotected, t.unprotected_positions, t.quote) == (2, 530.0, 530.0, 2, "USDT")


def test_the_words_say_how_many_how_much_and_how_many_unprotected():
    guarded = Exposure("BTC/USDT", 0.01, 90000.0, 92000.0, True)
    bare = Exposure("ETH/USDT", 0.3, 3000.0, 3000.0, False)
    unknown = Exposure("ETH-USDT", 0.3, 3000.0, 3000.0, None)
    assert words([]) == "flat (no open position)"
    assert words([guarded]) == "1 open position, 920.00 USDT; each with a stoploss on the exchange"
    assert words([guarded, bare]) == "2 open positions, 1820.00 USDT; 1 without a known stoploss on the exchange"
    assert words([unknown]) == "1 open position, 900.00 USDT; 1 without a known stoploss on the exchange"
    assert words([guarded, Exposure("ETH/BTC", 1.0, 0.03, 0.03, True)]).endswith("(mixed quote currencies); "
                                                                                 "each with a stoploss on the exchange")
