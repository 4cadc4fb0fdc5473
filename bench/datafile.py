"""Trade-file check: a 1M-row file parsed once, then collections that read only what was appended.

Prints one JSON line: the cold parse (validation and P&L, the vectorized path) against its floor,
`pandas.read_csv` of the same file, measured in the same run (target: ≤ 2x); the row-by-row path on the
same file (what the vectorized one saves); an incremental collection's seconds and bytes read for 100
appended rows and for none; and what a check keeps once it has read the file (target: ≤ 0.5 MB per bot).
"""

import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path


from botwatch.core import tradefile
from botwatch.core.book import TradeBook
from botwatch.core.tradefile import DataFileCheck

ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
START = 1_700_000_000


def row(i: int) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(START + i)) + f".{i % 1000:03d}Z"
    side = "buy" if i % 3 else "sell"
    return f"{ts},t{i:09d},{'BTC/USDT' if i % 2 else 'ETH/USDT'},{side},{100 + i % 50}.5,0.0{1 + i % 9},0.001\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trades.csv"
        with open(path, "w") as f:
            f.write("timestamp,trade_id,symbol,side,price,qty,fee\n")
            f.writelines(row(i) for i in range(ROWS))
        size = path.stat().st_size
        clock = lambda: START + ROWS + 3600  # noqa: E731
        import pandas
        floors, firsts = [], []
        for _ in range(3):      # interleaved, best of three each: the same machine state for both
            started = time.perf_counter()
            pandas.read_csv(path)
            floors.append(time.perf_counter() - started)
            check = DataFileCheck(path, sink=TradeBook(), clock=clock)
            started = time.perf_counter()
            status = check.collect()
            firsts.append(time.perf_counter() - started)
            assert status.valid and status.rows == ROWS, status.first_problem
            assert check.fast_rows == ROWS
        floor, first = min(floors), min(firsts)

        fast_min = tradefile.FAST_MIN_BYTES
        tradefile.FAST_MIN_BYTES = 1 << 62
        started = time.perf_counter()
        slow = DataFileCheck(path, sink=TradeBook(), clock=clock)
        slow.collect()
        row_by_row = time.perf_counter() - started
        tradefile.FAST_MIN_BYTES = fast_min
        del slow
        tracemalloc.start()   # a second, traced pass measures what a check keeps once it has read the file
        traced = DataFileCheck(path, sink=TradeBook(), clock=clock)
        traced.collect()
        retained = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del traced

        before = check.bytes_read
        started = time.perf_counter()
        check.collect()
        idle = time.perf_counter() - started
        idle_bytes = check.bytes_read - before

        with open(path, "a") as f:
            f.writelines(row(i) for i in range(ROWS, ROWS + 100))
        before = check.bytes_read
        started = time.perf_counter()
        status = check.collect()
        incremental = time.perf_counter() - started
        assert status.valid and status.rows == ROWS + 100
        print(json.dumps({
            "bench": "datafile", "rows": ROWS, "file_mb": round(size / 2**20, 1),
            "first_parse_s": round(first, 3), "pandas_read_csv_s": round(floor, 3),
            "first_parse_over_read_csv": round(first / floor, 2), "target_over_read_csv": 2.0,
            "row_by_row_s": round(row_by_row, 3), "rows_per_s": round(ROWS / first),
            "append_100_rows_s": round(incremental, 5), "append_100_rows_bytes_read": check.bytes_read - before,
            "no_change_s": round(idle, 5), "no_change_bytes_read": idle_bytes,
            "retained_mb_per_bot": round(retained / 2**20, 2), "target_retained_mb": 0.5,
        }))


if __name__ == "__main__":
    main()
