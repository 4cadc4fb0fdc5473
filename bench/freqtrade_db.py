"""Freqtrade's trade database with 100k closed trades: the store's first check against one plain SELECT, an
unchanged database, a changed one, and what a check costs the bot's writer.

The database is written by Freqtrade's own persistence code (1,000 trades, in the Freqtrade venv), then
grown to 100k trades by copying those rows in SQL. Prints one JSON line: the SELECT baseline, the first
check and P&L (and their ratio, target ≤ 2), an unchanged check (and how many times it opened the
database: target 0), a changed check after 10 new trades, one quick_check alone, and the worst commit
latency of a writer committing while checks run (target ≤ 0.1 s).
"""

import json
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from botwatch.core.stores import sqlite_check
from botwatch.core.stores.freqtrade_db import TRADE_COLUMNS, FreqtradeStore

TRADES = int(os.environ.get("BENCH_TRADES", 100_000))
FREQTRADE_PYTHON = Path(os.environ.get("BOTWATCH_FREQTRADE_VENV", ROOT / ".venv-freqtrade")) / "bin" / "python"
WRITER = ROOT / "tests" / "fixtures" / "freqtrade_writer.py"


def grow(path: Path, trades: int) -> None:
    """Copy the Freqtrade-written trades (with their orders) until there are `trades` of them."""
    with sqlite3.connect(path) as db:
        t_cols = [r[1] for r in db.execute("PRAGMA table_info(trades)") if r[1] != "id"]
        o_cols = [r[1] for r in db.execute("PRAGMA table_info(orders)")
                  if r[1] not in ("id", "ft_trade_id", "order_id")]
        seed = db.execute("SELECT MAX(id) FROM trades").fetchone()[0]
        while (count := db.execute("SELECT COUNT(*) FROM trades").fetchone()[0]) < trades:
            top = db.execute("SELECT MAX(id) FROM trades").fetchone()[0]
            batch = min(seed, trades - count)
            db.execute(f"INSERT INTO trades (id, {', '.join(t_cols)}) SELECT id + {top}, {', '.join(t_cols)} "
                       f"FROM trades WHERE id <= {batch}")
            db.execute(f"INSERT INTO orders (ft_trade_id, order_id, {', '.join(o_cols)}) SELECT ft_trade_id + {top}, "
                       f"order_id || '-{top}', {', '.join(o_cols)} FROM orders WHERE ft_trade_id <= {batch}")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def baseline(path: Path) -> float:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        seconds, _ = timed(lambda: (db.execute(f"SELECT {TRADE_COLUMNS} FROM trades").fetchall(),
                                    db.execute("SELECT id, ft_is_open, filled, order_filled_date FROM orders").fetchall()))
    return seconds


def writer_latency(path: Path, seconds: float) -> float:
    """A Freqtrade writer commits trades while a check runs on every change; its worst commit time."""
    writer = subprocess.Popen([str(FREQTRADE_PYTHON), str(WRITER), str(path), "--closed", "0", "--open", "0",
                               "--follow", str(seconds), "--every", "0.01", "--seed", "9"],
                              stdout=subprocess.PIPE, text=True)
    store = FreqtradeStore(path)
    stop = threading.Event()

    def check():
        while not stop.is_set():
            store.collect()
            time.sleep(0.01)

    checker = threading.Thread(target=check)
    checker.start()
    out = writer.communicate()[0]
    stop.set()
    checker.join()
    return json.loads(out.strip().splitlines()[-1])["worst_commit"]


def age(path: Path, seconds: float) -> None:
    """Set the database's (and its WAL's) mtime `seconds` back."""
    then = time.time_ns() - int(seconds * 1e9)
    for part in (path, Path(f"{path}-wal")):
        if part.exists():
            os.utime(part, ns=(then, then))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tradesv3.sqlite"
        subprocess.run([str(FREQTRADE_PYTHON), str(WRITER), str(path), "--closed", "1000", "--open", "2"],
                       check=True, capture_output=True)
        grow(path, TRADES)
        select = baseline(path)
        age(path, 10.0)          # last written 10 s ago, as a bot between trades: past the racy window
        store = FreqtradeStore(path, starting_balance=1000)
        first, status = timed(lambda: (store.collect(), store.summary()))
        opened = []
        real_connect = sqlite_check.connect_ro
        sqlite_check.connect_ro = lambda p: opened.append(p) or real_connect(p)
        unchanged, _ = timed(store.collect)
        opens_unchanged = len(opened)
        grow(path, TRADES + 10)
        changed, _ = timed(store.collect)
        # the next check within RACY_WINDOW of that write reads again (a commit may hide in the same mtime)
        racy, _ = timed(store.collect)
        sqlite_check.connect_ro = real_connect
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            quick_check, _ = timed(lambda: db.execute("PRAGMA quick_check").fetchall())
        worst_commit = writer_latency(path, 5.0)
        print(json.dumps({
            "bench": "freqtrade_db", "trades": status[0].rows, "file_mb": round(path.stat().st_size / 2**20, 1),
            "select_s": round(select, 4), "first_check_and_pnl_s": round(first, 4),
            "first_vs_select": round(first / select, 2), "unchanged_check_s": round(unchanged, 6),
            "unchanged_opens": opens_unchanged, "changed_check_s": round(changed, 4),
            "unchanged_within_racy_window_s": round(racy, 4),
            "quick_check_s": round(quick_check, 4), "writer_worst_commit_s": round(worst_commit, 4),
            "valid": status[0].valid}))


if __name__ == "__main__":
    main()
