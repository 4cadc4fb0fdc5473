"""Freqtrade's trade database as a store, on databases Freqtrade's own persistence code wrote."""

import os
from contextlib import closing
import shutil
import sqlite3
import subprocess
import time

import pytest

from botwatch.core.stores import sqlite_check
from botwatch.core.stores.freqtrade_db import FreqtradeStore
from tests.conftest import ROOT
from tests.fixtures.sqlite_damage import truncate_half, zero_a_middle_page, zero_header


def figures_match(store: FreqtradeStore, truth: dict) -> None:
    summary = store.summary()
    assert summary.realized == pytest.approx(truth["closed_profit"] + truth["open_realized"], abs=1e-9)
    assert {pair: round(amount, 8) for pair, amount in summary.positions.items() if abs(amount) > 1e-12} == \
        {pair: amount for pair, amount in truth["positions"].items() if amount}
    assert summary.trades == truth["fills"]


def test_figures_are_freqtrades_own(freqtrade_db):
    path, truth = freqtrade_db("ft.sqlite", "--closed", "30", "--open", "4", "--short", "2", "--partial")
    store = FreqtradeStore(path, starting_balance=1000)
    status = store.collect()
    assert status.valid and status.rows == truth["closed"] + 4 and not any(status.problems.values())
    figures_match(store, truth)
    assert store.summary(unrealized=2.5).equity == pytest.approx(1000 + store.summary().realized + 2.5)


def exposures(store) -> list[list]:
    return [[e.symbol, e.amount, e.entry, e.protected] for e in store.summary().exposure]


def test_each_open_trade_is_exposure_protected_only_while_its_stoploss_waits_on_the_exchange(freqtrade_db):
    path, truth = freqtrade_db("ft.sqlite", "--closed", "5", "--open", "3", "--short", "1",
                               "--stoploss-on-exchange", "2")
    store = FreqtradeStore(path)
    store.collect()
    assert [t[3] for t in truth["open_trades"]] == [True, True, False]       # Freqtrade's has_open_sl_orders
    assert exposures(store) == [[pair, pytest.approx(amount), pytest.approx(rate), protected]
                                for pair, amount, rate, protected in truth["open_trades"]]
    summary = store.summary(marks={truth["open_trades"][2][0]: 2 * truth["open_trades"][2][2]})
    last = summary.exposure[2]
    assert last.mark == pytest.approx(2 * last.entry) and last.notional == pytest.approx(abs(last.amount) * last.mark)
    # the stops cancelled (filled, or cancelled by hand on the exchange): read incrementally, none protected now
    _, truth = freqtrade_db("ft.sqlite", "--closed", "0", "--open", "0", "--cancel-stops")
    store.collect()
    assert [t[3] for t in truth["open_trades"]] == [False, False, False]
    assert [e.protected for e in store.summary().exposure] == [False, False, False]
    assert FreqtradeStore(path).summary().exposure == ()          # nothing read yet: no figures, not zero ones


def test_an_unchanged_database_is_not_opened(freqtrade_db, monkeypatch):
    path, _ = freqtrade_db()
    for p in (path, f"{path}-wal"):       # written a while ago: past the window in which a stat is not trusted
        if os.path.exists(p):
            os.utime(p, (time.time() - 10, time.time() - 10))
    store = FreqtradeStore(path)
    first = store.collect()
    opened = []
    monkeypatch.setattr(sqlite_check, "connect_ro", lambda p: opened.append(p))
    assert store.collect() is first and opened == []


def drop_orders(path):
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE orders")


def impossible_amount(path):
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trades SET amount = -1 WHERE is_open = 1")  # open rows are read again at each change


DAMAGE = {"not_a_database": zero_header, "truncated": truncate_half, "damaged": zero_a_middle_page,
          "schema": drop_orders, "values": impossible_amount}


@pytest.mark.parametrize("check", sorted(DAMAGE))
def test_each_kind_of_damage_is_named(freqtrade_db, check):
    path, _ = freqtrade_db("ft.sqlite", "--closed", "400", "--open", "2")
    assert os.path.getsize(f"{path}-wal") == 0, "every page is in the main file"
    store = FreqtradeStore(path)
    assert store.collect().valid
    DAMAGE[check](path)
    status = store.collect()
    assert not status.valid and status.problems[check] == 1, status
    assert status.first_problem.startswith(check)


def test_another_database_copied_over_it_is_replaced_history(freqtrade_db):
    path, _ = freqtrade_db("ft.sqlite", "--closed", "10", "--seed", "1")
    other, _ = freqtrade_db("other.sqlite", "--closed", "10", "--seed", "2")
    store = FreqtradeStore(path)
    assert store.collect().valid
    inode = os.stat(path).st_ino
    with open(other, "rb") as src, open(path, "r+b") as dst:    # in place: the same inode
        shutil.copyfileobj(src, dst)
    assert os.stat(path).st_ino == inode
    status = store.collect()
    assert not status.valid and status.problems["replaced"] == 1


def test_corrupt_is_a_state_until_the_file_is_replaced_by_a_good_one(freqtrade_db):
    path, truth = freqtrade_db("ft.sqlite", "--closed", "200")
    good = path.with_name("good.sqlite")
    shutil.copy(path, good)
    store = FreqtradeStore(path)
    assert store.collect().valid
    truncate_half(path)
    assert not store.collect().valid
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)                      # a change that repairs nothing
    assert not store.collect().valid
    os.replace(good, path)                         # a restore: a new file, validated from scratch
    status = store.collect()
    assert status.valid and not any(status.problems.values())
    figures_match(store, truth)


def test_a_missing_database_is_a_problem_not_an_error(tmp_path):
    status = FreqtradeStore(tmp_path / "none.sqlite").collect()
    assert not status.valid and status.problems["missing"] == 1


def test_reads_along_while_freqtrade_writes_in_wal_mode(freqtrade_python, tmp_path):
    path = tmp_path / "live.sqlite"
    writer = subprocess.Popen([freqtrade_python, str(ROOT / "tests" / "fixtures" / "freqtrade_writer.py"), str(path),
                               "--closed", "50", "--open", "1", "--follow", "4", "--every", "0.01"],
                              stdout=subprocess.PIPE, text=True)
    store = FreqtradeStore(path)
    seen = []
    while writer.poll() is None:
        if path.exists() and os.path.exists(f"{path}-wal"):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            status = store.collect()
            assert status.valid, status.first_problem
            seen.append(status.rows)
        time.sleep(0.02)
    truth = __import__("json").loads(writer.stdout.read().strip().splitlines()[-1])
    assert len(set(seen)) > 10, "the checks ran while trades were being written"
    assert store.collect().valid
    figures_match(store, truth)


def test_a_new_trade_with_impossible_values_is_found_incrementally(freqtrade_db):
    path, _ = freqtrade_db("ft.sqlite", "--closed", "20")
    store = FreqtradeStore(path)
    assert store.collect().valid
    with sqlite3.connect(path) as db:     # trade 1 again as trade 21, closed before it opened
        columns = [row[1] for row in db.execute("PRAGMA table_info(trades)") if row[1] != "id"]
        chosen = ["close_date" if c == "open_date" else "open_date" if c == "close_date" else c for c in columns]
        db.execute(f"INSERT INTO trades ({', '.join(columns)}) SELECT {', '.join(chosen)} FROM trades WHERE id = 1")
    status = store.collect()
    assert not status.valid and status.problems["values"] == 1 and "trade 23" in status.first_problem   # 20 closed, 2 open


def test_an_open_trade_whose_limit_entry_has_not_filled_is_valid_a_closed_one_without_amount_is_not(freqtrade_db):
    """Freqtrade creates a trade with amount 0 when it places its (limit) entry, and sets the amount as the
    order fills: that row is Freqtrade working, not corruption. A closed trade always had a fill."""
    path, _ = freqtrade_db("ft.sqlite", "--closed", "20", "--open", "2")
    store = FreqtradeStore(path)
    assert store.collect().valid
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trades SET amount = 0 WHERE is_open = 1")
    status = store.collect()
    assert status.valid, status.first_problem
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trades SET amount = 0 WHERE id = (SELECT MAX(id) FROM trades WHERE NOT is_open)")
        db.execute("UPDATE trades SET id = id + 1000 WHERE id = (SELECT MAX(id) FROM trades WHERE NOT is_open)")
    status = store.collect()
    assert not status.valid and "closed with amount 0" in status.first_problem, status.first_problem


def test_a_write_in_the_same_clock_tick_as_the_last_read_is_not_missed(freqtrade_db):
    """A file system stamps mtimes with a coarse clock (a few ms; a second on some), so a commit right after
    a check can leave the database's stat exactly as that check saw it. Seen as a flaky WAL test under load:
    the last trades' profit never counted. A stat that recent is not trusted: the store reads again."""
    path, _ = freqtrade_db("ft.sqlite", "--closed", "10", "--open", "2")
    # the running bot's own connection: while one is open, closing another leaves the -wal file in place
    # (the last one to close deletes it, and the stat of a file that went is no longer "the same")
    keeper = sqlite3.connect(path, isolation_level=None)
    keeper.execute("SELECT 1 FROM trades LIMIT 1").fetchall()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("UPDATE trades SET realized_profit = 1.0 WHERE is_open")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store = FreqtradeStore(path)
    before = store.collect()
    stamps = {p: os.stat(p) for p in (path, f"{path}-wal")}
    with closing(sqlite3.connect(path, isolation_level=None)) as db:     # the next commit, in place: same sizes
        db.execute("UPDATE trades SET realized_profit = 3.0 WHERE is_open")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p, st in stamps.items():            # ... and, in the same clock tick, the same mtimes
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in stamps} == \
        {p: (st.st_size, st.st_mtime_ns) for p, st in stamps.items()}
    realized = store.summary().realized
    store.collect()
    keeper.close()
    assert before.valid and store.summary().realized == pytest.approx(realized + 2 * (3.0 - 1.0))


def test_a_database_being_created_is_no_verdict_and_one_emptied_is_truncated(freqtrade_db, tmp_path):
    """SQLite creates the file, then writes its first page: a check in between read a 0-byte file as "does not
    start with the SQLite header" — a healthy new Freqtrade called corrupt (seen in the limit-order test)."""
    new = tmp_path / "new.sqlite"
    new.write_bytes(b"")
    status = FreqtradeStore(new).collect()
    assert not any(status.problems.values()), status.first_problem
    from botwatch.remediator.restore.backup_sqlite import check_database
    assert check_database(b"", "new")[0] is False        # and never a good backup to restore
    path, truth = freqtrade_db("ft.sqlite", "--closed", "5")
    store = FreqtradeStore(path)
    assert store.collect().valid
    path.write_bytes(b"")
    status = store.collect()
    assert not status.valid and status.problems["truncated"] == 1 and "it held" in status.first_problem


def test_tables_still_being_created_are_no_verdict_until_the_schema_was_once_whole(tmp_path, freqtrade_db):
    """Freqtrade creates its tables one by one at its first start: a check between two read "schema: missing
    orders" and called a healthy new bot corrupt (the limit-order test, under load). Once the database has had
    every table, one that goes missing is damage."""
    new = tmp_path / "new.sqlite"
    with sqlite3.connect(new) as db:
        db.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY)")
    status = FreqtradeStore(new).collect()
    assert not any(status.problems.values()), status.first_problem
    path, _ = freqtrade_db("ft.sqlite", "--closed", "3")
    store = FreqtradeStore(path)
    assert store.collect().valid
    drop_orders(path)
    assert store.collect().problems["schema"] == 1
