"""Hummingbot's trade database as a store, on databases built to Hummingbot's schema (tests/fixtures)."""

import os
import shutil
import sqlite3

import pytest

from botwatch.core.stores.hummingbot_db import HummingbotStore
from tests.fixtures.hummingbot_db import Fill, HummingbotFiles
from tests.fixtures.sqlite_damage import truncate_half, zero_a_middle_page, zero_header

T0 = 1_790_000_000.0

# Worked by hand, average cost (docs/data-integrity.md, "P&L"):
#   BUY  0.5 @ 30000 fee 15    -> long 0.5 @ 30000
#   BUY  0.5 @ 32000 fee 16    -> long 1.0 @ 31000
#   SELL 0.4 @ 33000 fee 13.2  -> +800 (0.4 × 2000), long 0.6 @ 31000
#   SELL 1.0 @ 30500 fee 30.5  -> −300 (0.6 × −500), flips: short 0.4 @ 30500
#   realized = 800 − 300 − 74.7 fees = 425.3
#   ETH: BUY 2 @ 2000.1234567 is stored as 2000123456 (× 10⁶, cut like Decimal→int), no fee
FILLS = [
    Fill(T0 + 0, "o1", "t1", "BTC-USDT", "BUY", "30000", "0.5", "15"),
    Fill(T0 + 60, "o2", "t2", "BTC-USDT", "BUY", "32000", "0.5", "16"),
    Fill(T0 + 120, "o3", "t3", "BTC-USDT", "SELL", "33000", "0.4", "13.2"),
    Fill(T0 + 180, "o4", "t4", "BTC-USDT", "SELL", "30500", "1.0", "30.5"),
    Fill(T0 + 240, "o5", "t5", "ETH-USDT", "BUY", "2000.1234567", "2", "0"),
]


@pytest.fixture
def hummingbot(tmp_path):
    files = HummingbotFiles(tmp_path)
    files.add(*FILLS)
    return files


def test_figures_by_average_cost_from_the_scaled_integers(hummingbot):
    with sqlite3.connect(hummingbot.db) as db:
        assert db.execute("SELECT price, amount FROM TradeFill WHERE order_id = 'o5'").fetchone() == (2000123456, 2000000)
    store = HummingbotStore(hummingbot.db, starting_balance=10_000, clock=lambda: T0 + 300)
    status = store.collect()
    assert status.valid and status.rows == 5 and status.trades == 5 and not any(status.problems.values())
    assert status.last_trade_ts == T0 + 240
    summary = store.summary()
    assert summary.realized == pytest.approx(425.3)
    assert summary.positions == {"BTC-USDT": pytest.approx(-0.4), "ETH-USDT": pytest.approx(2.0)}
    # unrealized at the last fill prices: the short is at its entry, ETH too
    assert summary.unrealized == pytest.approx(0.0)
    assert summary.equity == pytest.approx(10_425.3)


def test_new_fills_are_read_incrementally(hummingbot):
    store = HummingbotStore(hummingbot.db, clock=lambda: T0 + 600)
    store.collect()
    hummingbot.add(Fill(T0 + 300, "o6", "t6", "BTC-USDT", "BUY", "30000", "0.4", "12"))
    status = store.collect()
    assert status.valid and status.rows == 6 and status.trades == 6
    # the short of 0.4 @ 30500 bought back at 30000: +200, minus its fee
    assert store.summary().realized == pytest.approx(425.3 + 200 - 12)
    assert store.summary().positions["BTC-USDT"] == pytest.approx(0.0)


def drop_a_column(path):
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE TradeFill DROP COLUMN trade_fee_in_quote")


def impossible_price(path):
    with sqlite3.connect(path) as db:    # a new fill at price 0: only rows past the last rowid are read
        db.execute("INSERT INTO TradeFill SELECT config_file_path, strategy, market, symbol, base_asset, quote_asset, "
                   "timestamp, order_id, trade_type, order_type, 0, amount, leverage, trade_fee, trade_fee_in_quote, "
                   "'t-zero', position FROM TradeFill LIMIT 1")


def price_as_a_float(path):
    with sqlite3.connect(path) as db:    # a value not written by SqliteDecimal: a foreign writer
        db.execute("INSERT INTO TradeFill SELECT config_file_path, strategy, market, symbol, base_asset, quote_asset, "
                   "timestamp, order_id, trade_type, order_type, 30000.5, amount, leverage, trade_fee, "
                   "trade_fee_in_quote, 't-float', position FROM TradeFill LIMIT 1")


DAMAGE = {"not_a_database": zero_header, "truncated": truncate_half, "damaged": zero_a_middle_page,
          "schema": drop_a_column, "values": impossible_price}


@pytest.fixture
def big(tmp_path):
    """Enough fills for several pages, so a page in the middle holds rows."""
    files = HummingbotFiles(tmp_path / "big")
    files.add(*[Fill(T0 + i, f"o{i}", f"t{i}", "BTC-USDT", "BUY" if i % 2 else "SELL", "30000", "0.01", "0.3")
                for i in range(2000)], log=False)
    return files


@pytest.mark.parametrize("check", sorted(DAMAGE))
def test_each_kind_of_damage_is_named(big, check):
    store = HummingbotStore(big.db, clock=lambda: T0 + 3000)
    assert store.collect().valid
    DAMAGE[check](big.db)
    status = store.collect()
    assert not status.valid and status.problems[check] == 1, status
    assert status.first_problem.startswith(check)


def test_a_price_not_stored_as_scaled_integer_is_impossible(hummingbot):
    store = HummingbotStore(hummingbot.db, clock=lambda: T0 + 600)
    assert store.collect().valid
    price_as_a_float(hummingbot.db)
    status = store.collect()
    assert not status.valid and status.problems["values"] == 1 and "integer" in status.first_problem


def test_a_fill_from_the_future_is_impossible(hummingbot):
    store = HummingbotStore(hummingbot.db, clock=lambda: T0 + 300)
    assert store.collect().valid
    hummingbot.add(Fill(T0 + 300 + 3600, "o9", "t9", "BTC-USDT", "BUY", "30000", "0.1", "0"), log=False)
    status = store.collect()
    assert not status.valid and status.problems["values"] == 1 and "future" in status.first_problem


def test_another_database_copied_over_it_is_replaced_history(tmp_path, hummingbot):
    other = HummingbotFiles(tmp_path / "other")
    other.add(Fill(T0, "x1", "y1", "BTC-USDT", "BUY", "1", "1", "0"))
    store = HummingbotStore(hummingbot.db, clock=lambda: T0 + 600)
    assert store.collect().valid
    inode = os.stat(hummingbot.db).st_ino
    with open(other.db, "rb") as src, open(hummingbot.db, "r+b") as dst:
        shutil.copyfileobj(src, dst)
        dst.truncate()
    assert os.stat(hummingbot.db).st_ino == inode
    status = store.collect()
    assert not status.valid and status.problems["replaced"] == 1


def test_corrupt_is_a_state_until_a_good_file_replaces_it(hummingbot):
    good = hummingbot.db.with_name("good.sqlite")
    shutil.copy(hummingbot.db, good)
    store = HummingbotStore(hummingbot.db, starting_balance=10_000, clock=lambda: T0 + 600)
    assert store.collect().valid
    zero_header(hummingbot.db)
    assert not store.collect().valid
    os.replace(good, hummingbot.db)
    status = store.collect()
    assert status.valid and not any(status.problems.values())
    assert store.summary().realized == pytest.approx(425.3)


def test_a_missing_database_is_a_problem_not_an_error(tmp_path):
    status = HummingbotStore(tmp_path / "none.sqlite").collect()
    assert not status.valid and status.problems["missing"] == 1
