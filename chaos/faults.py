"""The chaos soak's faults: their kinds, what each needs to heal, the pace they may come at, and the
corruptions a live trade file (CSV or Freqtrade's SQLite) gets."""

from __future__ import annotations

import os
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botwatch.core.units import parse_duration
from botwatch.up.stack import TIMINGS

T = TIMINGS["fast"]
CHECK = float(T["check_interval"])
SCRAPE = parse_duration(T["scrape"])
HEALTH_TIMEOUT, STOP_TIMEOUT = 1.0, 2.0          # the soak's bots' health_timeout and stop_timeout
RESET_AFTER = parse_duration(T["remediation"]["healthy_reset_after"]) + parse_duration(T["remediation"]["verify_after"]) + 5
LOG_WINDOW = 60 + 15                              # the fast rules' auth/rate-limit window, and a margin
SERVICE_GAP = 15.0                                # seconds between two faults of one service
HEAL_TIMEOUT = 180.0
PROBE_EVERY = 0.25

BOT_KINDS = ("bot-kill", "bot-stop", "store", "auth-errors", "rate-limit", "remediator-kill")
SERVICE_KINDS = ("exporter-kill", "alertmanager-kill", "prometheus-restart")
RESTARTING = ("bot-kill", "bot-stop", "remediator-kill")
STARTS = {"bot-kill": 1, "bot-stop": 1, "store": 1, "remediator-kill": 1, "auth-errors": 0, "rate-limit": 0}


# -- the trade file's corruptions, as a live file gets them ------------------------------------------------

def _now_iso(delta: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def append_to(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _row(n: int, ts: str | None = None, side: str = "buy", price: str = "100", qty: str = "1",
         fee: str = "0.1", symbol: str = "ETH/USDT") -> bytes:
    return f"{ts or _now_iso()},chaos-{n},{symbol},{side},{price},{qty},{fee}\n".encode()


def _rows(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[1:-1]


def _shrink(path: Path, rng: random.Random) -> str:
    data = path.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    os.truncate(path, cut)
    return f"cut at byte {cut} of {len(data)}"


def _rewrite(path: Path, rng: random.Random) -> str:
    """One digit of a row the exporter validated seconds ago, inside the last 4 KiB (docs/data-integrity.md: a rewrite of the
    tail or the header is always caught; elsewhere in a large file only when it touches a sampled block)."""
    data = path.read_bytes()
    end = data.rstrip(b"\n").rfind(b"\n")
    for _ in range(12):                                      # 12 rows back: at 0.5 s a fill, ~6 s ago
        end = data.rfind(b"\n", 0, end)
    start = data.rfind(b"\n", 0, end) + 1 if end > 0 else 0
    if end <= 0 or start < max(len(data) - 4096, data.index(b"\n") + 1):
        raise ValueError("too few rows yet")
    price = data.rfind(b",", start, data.rfind(b",", start, data.rfind(b",", start, end)))   # ,price,qty,fee
    at = price + 1
    digit = data[at:at + 1]
    if not digit.isdigit():
        raise ValueError("no digit to change")
    new = str((int(digit) + rng.randrange(1, 10)) % 10).encode()
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(new)
    return f"byte {at}: {digit.decode()} -> {new.decode()}"


def _duplicate(path: Path, rng: random.Random) -> str:
    last = _rows(path)[-1].decode()
    fields = last.split(",")
    append_to(path, (",".join([_now_iso()] + fields[1:]) + "\n").encode())
    return f"trade {fields[1]} again"


CORRUPTIONS = {
    "field_count": lambda p, n, rng: append_to(p, f"{_now_iso()},chaos-{n},ETH/USDT,buy,100\n".encode()),
    "bad_number": lambda p, n, rng: append_to(p, _row(n, price="abc")),
    "non_positive": lambda p, n, rng: append_to(p, _row(n, qty="-1")),
    "negative_fee": lambda p, n, rng: append_to(p, _row(n, fee="-0.5")),
    "bad_side": lambda p, n, rng: append_to(p, _row(n, side="hold")),
    "bad_timestamp": lambda p, n, rng: append_to(p, _row(n, ts="yesterday")),
    "timestamp_backwards": lambda p, n, rng: append_to(p, _row(n, ts="2020-01-01T00:00:00Z")),
    "timestamp_future": lambda p, n, rng: append_to(p, _row(n, ts=_now_iso(86400))),
    "duplicate_trade_id": lambda p, n, rng: _duplicate(p, rng),
    "nul_bytes": lambda p, n, rng: append_to(p, b"\0" * 256),                     # the tail a crash leaves
    "invalid_utf8": lambda p, n, rng: append_to(p, _row(n).replace(b"ETH/USDT", b"ETH/\xff\xfe")),
    "torn_row": lambda p, n, rng: append_to(p, f"{_now_iso()},chaos-{n},ETH/US".encode()),  # the bot's next row merges
    "header": lambda p, n, rng: _overwrite(p, 0, b"TIMESTAMP"),
    "shrunk": lambda p, n, rng: _shrink(p, rng),
    "rewritten": lambda p, n, rng: _rewrite(p, rng),
}
# `missing` is left out: a live bot writes a new file at once (a new inode, valid from its first byte);
# `unreadable` needs another user than root.


def _checkpointed(path: Path) -> int:
    """Every page of a live WAL database in its main file (as a copy or a crash would find it); its size."""
    with sqlite3.connect(path, timeout=10) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def _zero_page(path: Path, rng: random.Random) -> str:
    pages = _checkpointed(path) // 4096
    page = rng.randrange(max(1, pages // 4), max(2, pages))
    _overwrite(path, page * 4096, b"\0" * 4096)
    return f"page {page} of {pages}"


def _zero_header(path: Path, rng: random.Random) -> str:
    _checkpointed(path)
    _overwrite(path, 0, b"\0" * 16)
    return "the first 16 bytes"


# A Freqtrade's database, damaged under it as a disk or a careless copy does it
SQLITE_DAMAGE = {"page_zeroed": _zero_page, "header_zeroed": _zero_header}


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@dataclass
class Fault:
    kind: str
    target: str                     # a bot's name or a service's
    injected: float                 # time.time()
    detail: str = ""
    old_pid: int | None = None
    healed: float | None = None
    expected_starts: int = 0
    starts: int = 0
    mid_playbook: bool | None = None
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"kind": self.kind, "target": self.target, "detail": self.detail,
                "at": round(self.injected, 3), "healed_after": None if self.healed is None
                else round(self.healed - self.injected, 2)}
