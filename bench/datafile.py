"""Trade-file check: a 1M-row file parsed once, then collections that read only what was appended.

Prints one JSON line: rows, first-parse seconds and rows/s, an incremental collection's seconds and
bytes read for 100 appended rows and for none, and the check's retained memory.
"""

import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botwatch.core.book import TradeBook  # noqa: E402
from botwatch.core.tradefile import DataFileCheck  # noqa: E402

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
        check = DataFileCheck(path, sink=TradeBook(), clock=clock)
        started = time.perf_counter()
        status = check.collect()
        first = time.perf_counter() - started
        assert status.valid and status.rows == ROWS, status.first_problem
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
            "first_parse_s": round(first, 3), "rows_per_s": round(ROWS / first),
            "append_100_rows_s": round(incremental, 5), "append_100_rows_bytes_read": check.bytes_read - before,
            "no_change_s": round(idle, 5), "no_change_bytes_read": idle_bytes,
            "retained_mb": round(retained / 2**20, 2),
        }))


if __name__ == "__main__":
    main()
