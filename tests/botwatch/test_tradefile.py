"""Each corruption the trade-file check names, each look-alike it must not flag, and its incremental reading."""

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from botwatch.core.book import TradeBook
from botwatch.core.config import DataFormat
from botwatch.core.tradefile import CHECKS, DataFileCheck, validate_file

HEADER = "timestamp,trade_id,symbol,side,price,qty,fee\n"
NOW = 1_800_000_000.0   # the injected clock: 2027-01-15


def row(i: int, ts: str | None = None, side="buy", price="100", qty="1", fee="0.1", trade_id=None, symbol="BTC/USDT"):
    ts = ts or datetime.fromtimestamp(1780272000 + i, timezone.utc).isoformat().replace("+00:00", "Z")
    return f"{ts},{trade_id or f't{i}'},{symbol},{side},{price},{qty},{fee}\n"


def good_file(path: Path, rows: int = 5) -> Path:
    path.write_text(HEADER + "".join(row(i) for i in range(rows)))
    return path


def check(path, **kwargs) -> DataFileCheck:
    return DataFileCheck(path, clock=lambda: NOW, **kwargs)


def append(path: Path, data: str | bytes) -> None:
    with open(path, "ab") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def only_problem(status) -> str:
    found = {name: count for name, count in status.problems.items() if count}
    assert len(found) == 1, found
    return next(iter(found))


CORRUPTIONS = [   # one bad row each (appended after good_file's rows t0..t4), and the check that names it
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100,1\n", "field_count"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100,1,0.1,extra\n", "field_count"),
    ("2026-06-01T01:00:00Z,x1,BTC/U2026-06-01T01:00:01Z,x2,BTC/USDT,buy,100,1,0.1\n", "field_count"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,abc,1,0.1\n", "bad_number"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,nan,1,0.1\n", "bad_number"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100,,0.1\n", "bad_number"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,0,1,0.1\n", "non_positive"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100,-1,0.1\n", "non_positive"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100,1,-0.1\n", "negative_fee"),
    ("2026-06-01T01:00:00Z,x1,BTC/USDT,sideways,100,1,0.1\n", "bad_side"),
    ("yesterday,x1,BTC/USDT,buy,100,1,0.1\n", "bad_timestamp"),
    ("2026-05-01T00:00:00Z,x1,BTC/USDT,buy,100,1,0.1\n", "timestamp_backwards"),
    ("2027-06-01T00:00:00Z,x1,BTC/USDT,buy,100,1,0.1\n", "timestamp_future"),
    ("2026-06-01T01:00:00Z,t3,BTC/USDT,buy,100,1,0.1\n", "duplicate_trade_id"),
    (b"2026-06-01T01:00:00Z,x1,BTC/USDT,buy,1\x00\x00\x00,1,0.1\n", "nul_bytes"),
    (b"\x00\x00\x00\x00\x00\x00\x00\x00\n", "nul_bytes"),
    (b"2026-06-01T01:00:00Z,x1,BTC/USDT,buy,100\xff\xfe,1,0.1\n", "invalid_utf8"),
]


@pytest.mark.parametrize("bad_line, check_name", CORRUPTIONS)
def test_each_appended_corruption_is_caught_by_its_check(tmp_path, bad_line, check_name):
    path = good_file(tmp_path / "t.csv")
    c = check(path)
    assert c.collect().valid
    append(path, bad_line)
    status = c.collect()
    assert not status.valid
    assert only_problem(status) == check_name
    assert status.first_problem.startswith(check_name)


@pytest.mark.parametrize("header", [
    "",                                                    # no header: the first line is a trade
    "timestamp,trade_id,symbol,side,price,quantity,fee\n",   # a column renamed
    "timestamp,trade_id,symbol,side,price,qty\n",            # a column dropped
])
def test_header_missing_or_changed(tmp_path, header):
    path = tmp_path / "t.csv"
    path.write_text(header + row(1) + row(2))
    status = check(path).collect()
    assert not status.valid and status.problems["header"] == 1


def test_missing_then_created_file(tmp_path):
    path = tmp_path / "t.csv"
    c = check(path)
    status = c.collect()
    assert not status.valid and only_problem(status) == "missing"
    good_file(path)
    assert c.collect().valid


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        path = tmp_path / "dir.csv"   # root reads anything: a directory stands in for an unreadable file
        path.mkdir()
    else:
        path = good_file(tmp_path / "t.csv")
        path.chmod(0)
    status = check(path).collect()
    assert not status.valid and only_problem(status) == "unreadable"


def test_shrunk_file(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=10)
    c = check(path)
    assert c.collect().valid
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(len(data) - len(row(9)))
    status = c.collect()
    assert not status.valid and only_problem(status) == "shrunk"


def test_rewrite_of_validated_bytes_in_place(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=200)
    c = check(path)
    assert c.collect().valid
    data = path.read_bytes()
    with open(path, "r+b") as f:   # same size, same inode: a price changed in the middle
        f.seek(data.index(b",t100,BTC/USDT,buy,1") + len(b",t100,BTC/USDT,buy,"))
        f.write(b"9")
    status = c.collect()
    assert not status.valid and only_problem(status) == "rewritten"


def test_rewrite_caught_in_a_large_file_by_the_tail_and_sampled_blocks(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=20_000)
    c = check(path)
    assert c.collect().valid
    size = path.stat().st_size
    with open(path, "r+b") as f:    # the last validated row, the place a misbehaving writer hits
        f.seek(size - 3)
        f.write(b"7")
    assert not c.collect().valid


@pytest.mark.parametrize("content", [
    HEADER.replace("\n", "\r\n") + row(1).replace("\n", "\r\n") + row(2).replace("\n", "\r\n"),   # CRLF
    "\ufeff" + HEADER + row(1),                                                                   # UTF-8 BOM
    HEADER,                                                                                       # header only
    HEADER + row(1) + "\n",                                                                       # a blank line
    "timestamp,trade_id,symbol,side,price,qty,fee,note\n" + row(1).rstrip("\n") + ",\"a, b\"\n",  # extra column
])
def test_look_alikes_are_not_corruption(tmp_path, content):
    path = tmp_path / "t.csv"
    path.write_bytes(content.encode())
    status = check(path).collect()
    assert status.valid, status.first_problem


def test_a_row_being_written_is_not_corruption_until_it_stays_torn(tmp_path):
    path = good_file(tmp_path / "t.csv")
    c = check(path)
    append(path, row(10)[:20])
    assert c.collect().valid                       # a write in progress
    append(path, row(10)[20:])
    assert c.collect().valid and c.status().rows == 6   # it completed
    append(path, row(11)[:20])
    assert c.collect().valid
    status = c.collect()                           # still torn at the next collection
    assert not status.valid and only_problem(status) == "torn_row"


def test_validate_file_once_treats_an_unterminated_line_as_torn(tmp_path):
    path = good_file(tmp_path / "t.csv")
    assert validate_file(path, clock=lambda: NOW).valid
    append(path, row(10)[:20])
    assert validate_file(path, clock=lambda: NOW).problems["torn_row"] == 1


def test_corruption_is_a_state_until_the_file_is_replaced(tmp_path):
    path = good_file(tmp_path / "t.csv")
    c = check(path)
    append(path, "garbage\n")
    assert not c.collect().valid
    append(path, row(20))                           # more good rows do not repair it
    assert not c.collect().valid
    fixed = good_file(tmp_path / "fixed.csv", rows=8)
    os.replace(fixed, path)                          # an atomic replace, as a restore does
    status = c.collect()
    assert status.valid and status.rows == 8 and not any(status.problems.values())


def test_corrupt_file_rewritten_in_place_is_validated_from_its_first_byte(tmp_path):
    path = good_file(tmp_path / "t.csv")
    c = check(path)
    append(path, "garbage\n")
    assert not c.collect().valid
    path.write_text(HEADER + "".join(row(i) for i in range(3)))   # truncate and rewrite, same inode
    assert c.collect().valid


def test_reads_only_the_appended_bytes(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=5000)
    c = check(path)
    c.collect()
    assert c.bytes_read == path.stat().st_size
    before = c.bytes_read
    for _ in range(3):
        c.collect()
    assert c.bytes_read == before                    # nothing new, nothing read
    append(path, row(6000))
    c.collect()
    assert c.bytes_read - before == len(row(6000))


def test_rows_trades_and_the_book_follow_the_file(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=0)
    book = TradeBook()
    c = check(path, sink=book)
    append(path, row(1, side="buy", price="100", qty="2", fee="0.2"))
    append(path, row(2, side="sell", price="110", qty="1", fee="0.1"))
    status = c.collect()
    assert (status.rows, status.trades) == (2, 2)
    assert book.realized == pytest.approx(10 - 0.3)
    assert status.last_trade_ts == pytest.approx(1780272002.0)


def test_a_duplicate_fill_is_not_counted_twice(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=3)
    book = TradeBook()
    c = check(path, sink=book)
    append(path, row(9, trade_id="t1"))
    status = c.collect()
    assert status.rows == 4 and status.trades == 3 and book.trades == 3


def test_duplicate_detection_is_bounded_to_the_window(tmp_path):
    path = good_file(tmp_path / "t.csv", rows=3000)
    c = check(path, data_format=DataFormat(dedup_window=1000))
    c.collect()
    append(path, row(5000, trade_id="t100"))         # 2,900 rows back, past the window: not remembered
    assert c.collect().valid
    append(path, row(5001, trade_id="t2002"))        # exactly 1,000 rows back: caught
    assert c.collect().problems["duplicate_trade_id"] == 1
    assert 1000 <= len(c._window) < 1000 + 2 * (1000 // 32 + 1)   # the window and at most two generations


def test_custom_columns_and_epoch_timestamps(tmp_path):
    fmt = DataFormat(columns={"timestamp": "ts", "trade_id": "id", "symbol": "pair", "qty": "amount"},
                     timestamp="epoch_ms")
    path = tmp_path / "t.csv"
    path.write_text("id,ts,pair,side,price,amount,fee\n"
                    "a1,1780272000000,DOGE/USDT,buy,0.15,100,0.01\n"
                    "a2,1780272001000,DOGE/USDT,sell,0.16,100,0.01\n")
    book = TradeBook()
    status = check(path, data_format=fmt, sink=book).collect()
    assert status.valid and status.trades == 2
    assert status.last_trade_ts == 1780272001.0
    assert book.realized == pytest.approx(1.0 - 0.02)


def test_every_check_is_reported_even_when_zero(tmp_path):
    status = check(good_file(tmp_path / "t.csv")).collect()
    assert set(status.problems) == set(CHECKS) and not any(status.problems.values())


def test_a_long_run_of_nul_bytes_without_a_newline_is_read_once(tmp_path):
    path = good_file(tmp_path / "t.csv")
    c = check(path)
    c.collect()
    append(path, b"\x00" * (3 * 1024 * 1024))       # what a crash can leave at the end of a file
    status = c.collect()
    assert not status.valid and status.problems["nul_bytes"] >= 1
    before = c.bytes_read
    c.collect()
    assert c.bytes_read == before                     # not read again at every collection
