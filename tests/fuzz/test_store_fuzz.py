"""The trade stores under fuzzing: whatever bytes a file holds, a check never raises; a valid file is never
called corrupt, however it is appended; a corruption of the corpus is never missed, wherever it lands."""

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from botwatch.core.book import Trade, TradeBook
from botwatch.core.config import DataFormat
from botwatch.core.presets import open_database
from botwatch.core.tradefile import CHECKS, DataFileCheck
from tests.botwatch.test_tradefile import CORRUPTIONS, HEADER, NOW
from tests.conftest import ROOT
from tests.fixtures.hummingbot_db import Fill, HummingbotFiles

pytestmark = pytest.mark.fuzz

START = 1_780_272_000     # 2026-06-01T00:00:00Z, as the corpus' good rows


@st.composite
def valid_rows(draw, min_size=0, max_size=60):
    """Rows every check accepts: rising timestamps, unique ids, buy/sell, positive numbers."""
    count = draw(st.integers(min_size, max_size))
    ts = START
    rows, trades = [], []
    for i in range(count):
        ts += draw(st.integers(0, 5000))
        side = draw(st.sampled_from(["buy", "sell"]))
        price = draw(st.floats(0.0001, 1e6, allow_nan=False, allow_infinity=False))
        qty = draw(st.floats(1e-8, 1e4, allow_nan=False, allow_infinity=False))
        fee = draw(st.floats(0, 10, allow_nan=False, allow_infinity=False))
        symbol = draw(st.sampled_from(["BTC/USDT", "ETH/USDT", "DOGE/USDT"]))
        spelled = draw(st.sampled_from(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%d %H:%M:%S"]))
        text = time.strftime(spelled, time.gmtime(ts))
        rows.append(f"{text},id-{i},{symbol},{side},{price!r},{qty!r},{fee!r}\n")
        trades.append(Trade(float(ts), f"id-{i}", symbol, side, price, qty, fee))
    return rows, trades


def check_file(path, **kwargs) -> DataFileCheck:
    return DataFileCheck(path, clock=lambda: NOW, **kwargs)


@given(data=st.binary(max_size=3000))
@example(data=b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n")
@example(data=HEADER.encode() + b'"unterminated,quote\n')
def test_any_bytes_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    path.write_bytes(data)
    status = check_file(path, sink=TradeBook()).collect()
    assert set(status.problems) == set(CHECKS)
    if data and not data.startswith(HEADER.encode()) and not data.startswith(b"\xef\xbb\xbf" + HEADER.encode()):
        assert not status.valid or status.rows == 0


@given(rows=valid_rows(), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_a_valid_file_is_valid_however_it_is_appended(tmp_path_factory, rows, cuts):
    lines, trades = rows
    data = (HEADER + "".join(lines)).encode()
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    points = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    path.write_bytes(b"")
    book = TradeBook()
    check = check_file(path, sink=book)
    written = 0
    for point in points:                 # appends cut anywhere, mid-line too
        with open(path, "ab") as f:
            f.write(data[written:point])
        written = point
        status = check.collect()
        assert status.valid, status.first_problem
    assert status.rows == status.trades == len(trades)
    expected = TradeBook()
    for trade in trades:
        expected.add(trade)
    assert book.summary() == expected.summary()


@given(rows=valid_rows(min_size=6), corruption=st.sampled_from(CORRUPTIONS), at=st.integers(5, 60),
       appended=st.booleans())
def test_a_corruption_of_the_corpus_is_never_missed(tmp_path_factory, rows, corruption, at, appended):
    bad_line, check_name = corruption
    bad = bad_line if isinstance(bad_line, bytes) else bad_line.encode()
    lines = [line.encode() for line in rows[0]]
    if check_name == "duplicate_trade_id":
        bad = bad.replace(b",t3,", b",id-3,")            # a duplicate of a row before it
    at = min(at, len(lines))
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    head, tail = HEADER.encode() + b"".join(lines[:at]), bad + b"".join(lines[at:])
    check = check_file(path)
    if appended:
        path.write_bytes(head)
        check.collect()
        with open(path, "ab") as f:
            f.write(tail)
    else:
        path.write_bytes(head + tail)
    status = check.collect()
    assert not status.valid and status.problems[check_name] >= 1, (check_name, status.problems)


@given(rows=valid_rows(min_size=1), fmt=st.sampled_from(["epoch_s", "epoch_ms"]))
def test_epoch_files_read_as_their_iso_twins(tmp_path_factory, rows, fmt):
    lines, trades = rows
    scale = 1 if fmt == "epoch_s" else 1000
    epoch = "".join(f"{int(t.timestamp * scale)}," + line.split(",", 1)[1] for t, line in zip(trades, lines))
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "iso.csv").write_text(HEADER + "".join(lines))
    (folder / "epoch.csv").write_text(HEADER + epoch)
    iso = check_file(folder / "iso.csv").collect()
    other = check_file(folder / "epoch.csv", data_format=DataFormat(timestamp=fmt)).collect()
    assert replace(iso, last_write=None) == replace(other, last_write=None)


# -- SQLite stores ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hummingbot_db(tmp_path_factory):
    files = HummingbotFiles(tmp_path_factory.mktemp("hb"))
    files.add(*[Fill(START + i, f"o{i}", f"x{i}", "BTC-USDT", "BUY" if i % 2 else "SELL", "100.5", "0.25")
                for i in range(300)], log=False)
    return files.db


@pytest.fixture(scope="module")
def freqtrade_db_file(tmp_path_factory, freqtrade_python):
    path = tmp_path_factory.mktemp("ft") / "tradesv3.sqlite"
    subprocess.run([freqtrade_python, str(ROOT / "tests" / "fixtures" / "freqtrade_writer.py"), str(path),
                    "--closed", "40", "--open", "2"], check=True, capture_output=True, timeout=300)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


damage = st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64)), max_size=4)


@pytest.mark.parametrize("kind", ["hummingbot", "freqtrade"])
@given(cut=st.none() | st.floats(0, 1), writes=damage)
def test_a_damaged_database_never_raises_and_a_whole_one_is_valid(request, tmp_path_factory, kind, cut, writes):
    source = request.getfixturevalue("hummingbot_db" if kind == "hummingbot" else "freqtrade_db_file")
    path = tmp_path_factory.mktemp("db") / source.name
    shutil.copyfile(source, path)
    store = open_database(kind, path, 1000.0, "fuzz", clock=lambda: NOW)
    assert store.collect().valid
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for where, junk in writes:
            f.seek(int(where * size))
            f.write(junk)
    if cut is not None:
        os.truncate(path, int(cut * size))
    status = open_database(kind, path, 1000.0, "fuzz", clock=lambda: NOW).collect()   # never raises
    assert status.valid or status.first_problem, "a store found bad says why"
    assert set(status.problems) == set(status.checks)
    if not writes and cut is None:
        assert status.valid


@given(data=st.binary(max_size=8192))
def test_any_bytes_as_a_database_never_raise(tmp_path_factory, data):
    for kind in ("hummingbot", "freqtrade"):
        path = tmp_path_factory.mktemp("db") / "x.sqlite"
        path.write_bytes(data)
        status = open_database(kind, path, 0.0, "fuzz", clock=lambda: NOW).collect()
        if not data:         # an empty file is a database SQLite is creating: no verdict, never "corrupt"
            assert not any(status.problems.values())
            continue
        assert not status.valid
