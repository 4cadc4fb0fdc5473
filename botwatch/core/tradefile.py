"""Incremental validation of a bot's trade data file.

`DataFileCheck.collect()` reads only the bytes appended since the previous call, validates each complete
line and hands every good fill to a sink (the P&L book). A file found corrupt stays corrupt until it is
repaired: replaced (a new inode, as an atomic rename gives) or rewritten in place, then validated again
from its first byte.

What it keeps between calls is bounded: the read offset, the last timestamp, 64-bit hashes of the last
`data_format.dedup_window` trade ids (`idwindow`), and a fingerprint of a few sampled blocks of the bytes
already validated, so that a rewrite of those bytes is caught without reading them again.

Two paths validate rows with the same rules: a large read (the first one of a big file, a big append)
goes through `tradefile_fast`, vectorized, which takes a chunk only when it finds it entirely clean;
anything else, and every small append, goes row by row here. They agree to the last bit (a test
compares them on the corruption corpus and on random files).
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from botwatch.core import memory, tradefile_fast
from botwatch.core.book import Trade
from botwatch.core.config_types import COLUMNS, DataFormat
from botwatch.core.fingerprint import Fingerprint
from botwatch.core.idwindow import IdWindow, hash_ids
from botwatch.core.tradefields import SIDES, TIMESTAMP_PARSERS, number, split_fields

log = logging.getLogger(__name__)

CHECKS = (
    "missing",              # the file does not exist
    "unreadable",           # it exists but can't be opened or read
    "header",               # the first line is not a header naming the seven columns
    "field_count",          # a row with more or fewer fields than the header: a torn or merged row
    "torn_row",             # the last line stayed without its newline across two collections
    "nul_bytes",            # NUL bytes, as a crash or a disk fault leaves them
    "invalid_utf8",         # bytes that are not UTF-8
    "bad_number",           # price, qty or fee not a finite number
    "non_positive",         # price or qty <= 0
    "negative_fee",         # fee < 0
    "bad_side",             # side not buy or sell
    "bad_timestamp",        # a timestamp that does not parse
    "timestamp_backwards",  # earlier than the row before it
    "timestamp_future",     # later than now plus FUTURE_TOLERANCE
    "duplicate_trade_id",   # a trade id seen among the last data_format.dedup_window rows
    "shrunk",               # the file got shorter: validated rows were lost
    "rewritten",            # bytes already validated changed in place
)

FUTURE_TOLERANCE = 300.0       # seconds of clock skew between the bot's host and ours
READ_CHUNK = 4 * 1024 * 1024   # bytes read at a time, so a huge append costs bounded memory
MAX_ROW = 1024 * 1024          # longer than any real row: bytes without a newline past this are corruption
MAX_LOGGED_PROBLEMS = 20       # problems logged with their line per file generation
FAST_MIN_BYTES = 64 * 1024     # reads at least this big try the vectorized path first
# Large reads run a few at a time, whatever the number of check threads: their buffers are what the
# exporter's memory peaks on, and more of them at once would only queue for the same cores and the GIL.
LARGE_READS = threading.BoundedSemaphore(max(1, min(2, os.cpu_count() or 1)))


class TradeSink(Protocol):
    def reset(self) -> None: ...
    def add(self, trade: Trade) -> None: ...
    # optional: `add_columns(symbols, codes, buys, prices, qtys, fees)` (TradeBook's) lets the
    # vectorized path hand over a clean chunk at once


@dataclass(frozen=True)
class DataFileStatus:
    valid: bool
    problems: dict[str, int]
    rows: int
    trades: int
    last_write: float | None
    last_trade_ts: float | None
    first_problem: str | None = None
    checks: tuple[str, ...] = CHECKS        # every check this kind of store makes (the `check` label)
    present: bool = True                    # the file exists (a bot yet to write its first trade has none)
    seen: bool = True                       # it has existed while watched: missing now means it vanished


class _NullSink:
    def reset(self) -> None:
        pass

    def add(self, trade: Trade) -> None:
        pass


class DataFileCheck:
    """Validates one trade file incrementally; see the module docstring for what it catches."""

    future_tolerance = FUTURE_TOLERANCE

    def __init__(self, path: Path | str, data_format: DataFormat | None = None, sink: TradeSink | None = None,
                 clock: Callable[[], float] = time.time, name: str = ""):
        self.path = Path(path)
        self.format = data_format or DataFormat()
        self.sink = sink or _NullSink()
        self.clock = clock
        self.name = name or self.path.name
        self._parse_ts = TIMESTAMP_PARSERS[self.format.timestamp]
        self._corrupt = False
        self._ident: tuple[int, int] | None = None
        self.bytes_read = 0   # appended bytes read, all generations: what "incremental" is measured by
        self.fast_rows = 0    # rows the vectorized path took, all generations
        self._large_read = False
        self._start_generation()

    def _start_generation(self) -> None:
        """Forget everything learned from the file's bytes: the next collection reads it from byte 0."""
        self._offset = 0
        self._line_no = 0
        self._columns: dict[str, int] | None = None
        self._width = 0
        self._last_ts: float | None = None
        self._window = IdWindow(self.format.dedup_window)
        self._pending: tuple[int, int] | None = None     # (offset, size) of an unterminated last line
        self._torn_at: int | None = None                  # where a torn row was reported, to say it once
        self._fingerprint = Fingerprint()
        self._counts = dict.fromkeys(CHECKS, 0)
        self._first_problem: str | None = None
        self._logged = 0
        self._rows = 0
        self._trades = 0
        self._last_write: float | None = None
        self.sink.reset()

    # -- what a collection does -------------------------------------------------------------------

    def collect(self) -> DataFileStatus:
        """Read what was appended since the last call and return the file's state."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self._absent("missing", f"{self.path} does not exist")
        except OSError as err:
            return self._absent("unreadable", f"{self.path}: {err.strerror}")
        try:
            self._collect_open(fd)
        except OSError as err:
            return self._absent("unreadable", f"{self.path}: {err.strerror}")
        finally:
            os.close(fd)
        return self.status()

    def _absent(self, check: str, detail: str) -> DataFileStatus:
        problems = dict(self._counts, missing=0, unreadable=0)
        problems[check] = 1
        seen = check != "missing" or self._ident is not None
        if check == "missing":
            detail += " (it existed: it vanished)" if seen else " yet"
        return DataFileStatus(False, problems, self._rows, self._trades, None, self._last_ts, detail,
                              present=check != "missing", seen=seen)

    def _collect_open(self, fd: int) -> None:
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident:
            if self._ident is not None:
                log.info("%s: %s was replaced; validating it from its first byte", self.name, self.path)
            self._ident = ident
            self._corrupt = False
            self._start_generation()
        elif st.st_size < self._offset:
            self._changed_in_place("shrunk", f"{self.path} shrank from {self._offset} to {st.st_size} bytes")
        elif self._offset and not self._fingerprint.matches(fd):
            self._changed_in_place("rewritten", f"{self.path}: bytes already validated were rewritten")
        self._last_write = st.st_mtime
        self._read_appended(fd, st.st_size)

    def _changed_in_place(self, check: str, detail: str) -> None:
        """Validated bytes changed: corruption when the file was good, a repair attempt when it was not."""
        if self._corrupt:
            log.info("%s: %s changed in place while corrupt; validating it again from its first byte",
                     self.name, self.path)
            self._corrupt = False
            self._start_generation()
            return
        counts = self._counts
        self._start_generation()
        self._counts = counts   # the problem stands; the rows are read again for the numbers
        self._problem(check, detail)

    def _read_appended(self, fd: int, size: int) -> None:
        carry = b""
        position = self._offset
        while position < size:
            chunk = os.pread(fd, min(READ_CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            self.bytes_read += len(chunk)
            data = carry + chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                if len(carry) > MAX_ROW:   # no row is this long: a NUL-filled tail after a crash, say
                    self._oversized(carry)
                    carry = b""
                continue
            self._lines(data[:end + 1])
            self._offset += end + 1
            carry = data[end + 1:]
        self._fingerprint.extend(fd, self._offset)
        self._check_unterminated(size)
        if self._large_read:     # its buffers are free now: hand them back rather than sit on them
            self._large_read = False
            memory.give_back()

    def _oversized(self, data: bytes) -> None:
        """Consume a run of bytes with no newline that is longer than any row, so it is read only once."""
        self._line_no += 1
        self._rows += 1
        check = "nul_bytes" if b"\x00" in data else "torn_row"
        self._problem(check, f"line {self._line_no}: over {MAX_ROW} bytes without a newline")
        self._offset += len(data)

    def _check_unterminated(self, size: int) -> None:
        """A last line without its newline is a write in progress, unless it is still so next time."""
        if self._offset >= size:
            self._pending = None
            return
        if self._pending == (self._offset, size) and self._torn_at != self._offset:
            self._problem("torn_row", f"line {self._line_no + 1}: the last line has had no newline "
                                      f"for two collections ({size - self._offset} bytes)")
            self._torn_at = self._offset
        self._pending = (self._offset, size)

    @property
    def unterminated_bytes(self) -> int:
        """Bytes after the last newline: a row being written, or a torn one."""
        return self._pending[1] - self._pending[0] if self._pending else 0

    # -- what a line may be -----------------------------------------------------------------------

    def _lines(self, data: bytes) -> None:
        self._now = self.clock()
        if self._columns is None:              # the header (and any bad lines before it) row by row
            end = data.find(b"\n") + 1
            self._row_by_row(data[:end])
            data = data[end:]
        if self._columns is not None and len(data) >= FAST_MIN_BYTES and hasattr(self.sink, "add_columns"):
            with LARGE_READS:
                if not tradefile_fast.take_clean(self, data):
                    self._row_by_row(data)
            self._large_read = True
            return
        self._row_by_row(data)

    def _row_by_row(self, data: bytes) -> None:
        """Validate complete lines one at a time: split them, look their trade ids up in one batch, judge them."""
        lines: list[tuple[int, str | None, object]] = []     # (line no, problem check or None, detail or fields)
        ids: list[str] = []
        for raw in data.split(b"\n")[:-1]:
            self._line_no += 1
            if b"\x00" in raw:
                lines.append((self._line_no, "nul_bytes", "NUL bytes"))
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                lines.append((self._line_no, "invalid_utf8", f"not UTF-8 ({err.reason} at byte {err.start})"))
                continue
            if line.endswith("\r"):
                line = line[:-1]
            if self._columns is None:
                lines.append((self._line_no, "header", self._header(line)))
            elif line.strip():
                fields = split_fields(line)
                if len(fields) != self._width:
                    lines.append((self._line_no, "field_count", f"{len(fields)} fields, the header has {self._width}"))
                    continue
                lines.append((self._line_no, None, fields))
                ids.append(fields[self._id_column].strip())
        seen = iter(self._window.check(hash_ids(ids)).tolist())
        for line_no, check, what in lines:
            if check is None:
                self._rows += 1
                self._row(line_no, what, next(seen))
            elif check == "header":
                if what:
                    self._problem("header", f"line {line_no}: {what}")
            else:
                self._rows += 1
                self._problem(check, f"line {line_no}: {what}")

    def _header(self, line: str) -> str | None:
        """Take the columns from the header line; what is wrong with it, if anything."""
        names = [name.strip() for name in split_fields(line.removeprefix("\ufeff"))]
        wanted = self.format.header_names()
        missing = [column for column, name in wanted.items() if names.count(name) != 1]
        if not missing:
            self._use_columns({column: names.index(name) for column, name in wanted.items()}, len(names))
            return None
        # read on in the default column order so the numbers stay as good as they can be
        self._use_columns({column: index for index, column in enumerate(COLUMNS)}, len(COLUMNS))
        return f"expected a header naming {','.join(wanted.values())}, found {line[:120]!r}"

    def _use_columns(self, columns: dict[str, int], width: int) -> None:
        self._columns = columns
        self._width = width
        self._id_column = columns["trade_id"]
        self._pick = operator.itemgetter(*(columns[column] for column in COLUMNS))

    def _row(self, line_no: int, fields: list[str], seen: bool) -> None:
        ts_text, trade_id, symbol, side, price_text, qty_text, fee_text = self._pick(fields)
        ok = True
        try:
            ts = self._parse_ts(ts_text.strip())
        except (ValueError, OverflowError):
            ts = None
            ok = self._problem("bad_timestamp", f"line {line_no}: timestamp {ts_text[:40]!r}")
        if side not in SIDES:
            side = side.strip().lower()
            if side not in SIDES:
                ok = self._problem("bad_side", f"line {line_no}: side {side[:20]!r}")
        price, qty, fee = number(price_text), number(qty_text), number(fee_text)
        if price is None or qty is None or fee is None:
            ok = self._problem("bad_number", f"line {line_no}: price/qty/fee not a finite number")
        else:
            if price <= 0 or qty <= 0:
                ok = self._problem("non_positive", f"line {line_no}: price {price:g}, qty {qty:g}")
            if fee < 0:
                ok = self._problem("negative_fee", f"line {line_no}: fee {fee:g}")
        if ts is not None:
            if self._last_ts is not None and ts < self._last_ts:
                ok = self._problem("timestamp_backwards", f"line {line_no}: timestamp earlier than the row before")
            elif ts > self._now + FUTURE_TOLERANCE:
                ok = self._problem("timestamp_future", f"line {line_no}: timestamp in the future")
            else:
                self._last_ts = ts
        if seen:
            self._problem("duplicate_trade_id", f"line {line_no}: trade_id {trade_id.strip()[:40]!r} again")
            return  # a duplicate fill must not count twice
        if ok:
            self._trades += 1
            self.sink.add(Trade(ts, trade_id.strip(), symbol.strip(), side, price, qty, fee))

    def _problem(self, check: str, detail: str) -> bool:
        self._counts[check] += 1
        if not self._corrupt:
            log.warning("%s: %s is corrupt (%s): %s", self.name, self.path, check, detail)
        elif self._logged < MAX_LOGGED_PROBLEMS:
            log.info("%s: %s: %s", self.name, check, detail)
        self._logged += 1
        self._corrupt = True
        self._first_problem = self._first_problem or f"{check}: {detail}"
        return False

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint(self) -> dict | None:
        """What `resume` needs to carry on without re-reading the validated bytes (JSON-able, the id window's
        arrays aside: `window` holds them); None before the file has been opened."""
        if self._ident is None:
            return None
        fp = self._fingerprint
        return {
            "file": list(self._ident), "offset": self._offset, "line_no": self._line_no,
            "columns": self._columns, "width": self._width, "last_ts": self._last_ts,
            "pending": list(self._pending) if self._pending else None, "torn_at": self._torn_at,
            "fingerprint": {"validated": fp.validated, "head": fp.head.hex(), "tail": fp.tail.hex(),
                            "blocks": {str(i): d.hex() for i, d in fp.blocks.items()}, "seen_blocks": fp.seen_blocks},
            "counts": self._counts, "first_problem": self._first_problem, "logged": self._logged,
            "rows": self._rows, "trades": self._trades, "corrupt": self._corrupt,
        }

    @property
    def window(self) -> IdWindow:
        return self._window

    def resume(self, state: dict, window: IdWindow) -> bool:
        """Carry on from a checkpoint when the file is provably the one it describes, extended: same inode, at
        least as long, the fingerprint of the validated bytes unchanged. The sink must already hold the
        checkpoint's fills. False (nothing changed) when the file or the checkpoint does not fit."""
        try:
            resumed = self._resumed(state, window)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            log.warning("%s: the checkpoint does not fit (%s); reading %s from its first byte", self.name, err, self.path)
            return False
        if not resumed:
            return False
        self.__dict__.update(resumed)
        return True

    def _resumed(self, state: dict, window: IdWindow) -> dict | None:
        fp = state["fingerprint"]
        fingerprint = Fingerprint(validated=_int(fp["validated"]), head=bytes.fromhex(fp["head"]),
                                  tail=bytes.fromhex(fp["tail"]), seen_blocks=_int(fp["seen_blocks"]),
                                  blocks={_int(int(i)): bytes.fromhex(d) for i, d in fp["blocks"].items()})
        fingerprint.rng.seed(fingerprint.seen_blocks)
        offset = _int(state["offset"])
        counts = {check: _int(state["counts"][check]) for check in CHECKS}
        columns = state["columns"]
        if columns is not None:
            columns = {column: _int(columns[column]) for column in COLUMNS}
        width = _int(state["width"])
        if columns is not None and not all(0 <= i < width for i in columns.values()):
            raise ValueError("columns outside the row")
        if fingerprint.validated != offset or window.size != self.format.dedup_window:
            raise ValueError("the parts disagree")
        pending = state["pending"]
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if [st.st_dev, st.st_ino] != state["file"] or st.st_size < offset or \
                    (offset and not fingerprint.matches(fd)):
                log.info("%s: %s is not the file its checkpoint describes; reading it from its first byte",
                         self.name, self.path)
                return None
        finally:
            os.close(fd)
        resumed = {
            "_ident": (st.st_dev, st.st_ino), "_offset": offset, "_line_no": _int(state["line_no"]),
            "_last_ts": None if state["last_ts"] is None else float(state["last_ts"]),
            "_pending": None if pending is None else (_int(pending[0]), _int(pending[1])),
            "_torn_at": None if state["torn_at"] is None else _int(state["torn_at"]),
            "_fingerprint": fingerprint, "_counts": counts, "_first_problem": _text(state["first_problem"]),
            "_logged": _int(state["logged"]), "_rows": _int(state["rows"]), "_trades": _int(state["trades"]),
            "_corrupt": bool(state["corrupt"]), "_window": window,
        }
        if columns is not None:
            self._use_columns(columns, width)
        else:
            resumed["_columns"] = None
        return resumed

    # -- what it reports --------------------------------------------------------------------------

    def status(self) -> DataFileStatus:
        return DataFileStatus(
            valid=not self._corrupt,
            problems=dict(self._counts),
            rows=self._rows,
            trades=self._trades,
            last_write=self._last_write,
            last_trade_ts=self._last_ts,
            first_problem=self._first_problem,
        )


def _int(value) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _text(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def validate_file(path: Path | str, data_format: DataFormat | None = None, sink: TradeSink | None = None,
                  clock: Callable[[], float] = time.time) -> DataFileStatus:
    """Validate a whole file once, from its first byte, with the same rules as the exporter."""
    check = DataFileCheck(path, data_format, sink, clock)
    status = check.collect()
    if status.valid and check.unterminated_bytes:
        # a one-off validation has no second look: an unterminated last line is torn now
        return DataFileStatus(False, dict(status.problems, torn_row=1), status.rows, status.trades,
                              status.last_write, status.last_trade_ts, "torn_row: the last line has no newline")
    return status
