"""The vectorized path of the trade-file check: a large chunk of complete lines validated at once.

`take_clean(check, data)` validates every row of `data` (complete lines, after the header) with numpy
and pandas. When the whole chunk is clean it hands the fills to the sink in one call, advances the
check's state exactly as the row-by-row path would have, and returns True. When any row has any
problem, or the chunk has something this path does not handle (quotes, CR, NUL, blank lines, odd
spellings), it changes nothing and returns False: the row-by-row path then validates the chunk and
reports each problem with its line. So this path never has to agree on how a problem is reported,
only on which chunks are clean and on the numbers of clean ones, and those it computes with the
same operations:

- numbers with pandas' C parser, which rounds as Python's float() does; it also reads the words
  true/false as 1/0, which float() rejects, so a chunk with such a field goes row by row;
- ISO timestamps in the usual shapes from their digits (microseconds since the epoch, divided by 10**6,
  as datetime.timestamp() does); any other spelling is parsed by the row-by-row path's own parser;
- trade ids hashed from their bytes (`idwindow.hash_fields`), as `hash_ids` hashes the stripped strings;
- P&L by `TradeBook.add_columns`, which runs the same average-cost code as `add`.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from botwatch.core.idwindow import hash_fields
from botwatch.core.tradefields import SIDES, TIMESTAMP_PARSERS

_NEWLINE, _COMMA = 10, 44
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[48:58] = True
_TRUE_FALSE_START = np.zeros(256, dtype=bool)
_TRUE_FALSE_START[list(b"tTfF")] = True
_PLAIN = np.zeros(256, dtype=bool)        # bytes str.strip() never removes, and that need no decoding
_PLAIN[0x21:0x7F] = True

# The ISO 8601 shapes read from their digits: date and time, then optionally a 3- or 6-digit fraction,
# then optionally Z or a +HH:MM offset. Any other spelling is left to datetime.fromisoformat.
_ISO_SHAPES: dict[int, tuple[int, bool]] = {}     # length -> (fraction digits, has +HH:MM offset)
for _fraction in (0, 3, 6):
    _base = 19 + (_fraction + 1 if _fraction else 0)
    _ISO_SHAPES[_base] = (_fraction, False)
    _ISO_SHAPES[_base + 1] = (_fraction, False)      # ...Z
    _ISO_SHAPES[_base + 6] = (_fraction, True)       # ...+HH:MM
_ISO_SHAPES[20] = (0, False)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def take_clean(check, data: bytes) -> bool:
    """Validate `data` (complete rows) for `check` at once; True when it was clean and has been taken."""
    if b"\x00" in data or b'"' in data or b"\r" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    fields = _Fields.split(data, check._width)
    if fields is None:
        return False
    columns = check._columns
    rows = fields.count

    start, length = fields.field(columns["trade_id"])
    if not _all_plain_ends(fields.buffer, start, length):
        return False
    hashes = hash_fields(fields.buffer, start, length)

    for column in ("price", "qty", "fee"):
        if _may_read_as_bool(fields, columns[column]):
            return False
    parsed = _read_columns(data, check._width, columns, check.format.timestamp)
    if parsed is None:
        return False
    frame, symbol_names, symbol_codes, buys = parsed
    if len(frame) != rows:        # pandas split the lines otherwise than we did: not a chunk for this path
        return False
    prices, qtys, fees = (frame[c].to_numpy(dtype=np.float64) for c in ("price", "qty", "fee"))
    if not (np.isfinite(prices).all() and np.isfinite(qtys).all() and np.isfinite(fees).all()):
        return False
    if (prices <= 0).any() or (qtys <= 0).any() or (fees < 0).any():
        return False

    if check.format.timestamp == "iso":
        stamps = _iso_timestamps(fields, columns["timestamp"])
    else:
        if _may_read_as_bool(fields, columns["timestamp"]):
            return False
        scale = 1.0 if check.format.timestamp == "epoch_s" else 1000.0
        stamps = frame["timestamp"].to_numpy(dtype=np.float64) / scale
    if stamps is None or not np.isfinite(stamps).all():
        return False
    last = -np.inf if check._last_ts is None else check._last_ts
    if (stamps > check._now + check.future_tolerance).any():
        return False
    running = np.maximum.accumulate(np.concatenate(([last], stamps)))
    if (stamps < running[:-1]).any():
        return False

    mark = check._window.mark()
    if check._window.check(hashes).any():
        check._window.rollback(mark)
        return False

    check.sink.add_columns(symbol_names, symbol_codes, buys, prices, qtys, fees)
    check._line_no += rows
    check._rows += rows
    check._trades += rows
    check.fast_rows += rows
    check._last_ts = float(running[-1])
    return True


class _Fields:
    """Where each field of each line of a chunk starts and ends, when every line has `width` fields."""

    def __init__(self, buffer: np.ndarray, line_starts: np.ndarray, commas: np.ndarray, ends: np.ndarray):
        self.buffer = buffer
        self.line_starts = line_starts
        self.commas = commas          # (rows, width - 1)
        self.ends = ends              # each line's newline
        self.count = len(ends)

    @classmethod
    def split(cls, data: bytes, width: int) -> _Fields | None:
        buffer = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(buffer == _NEWLINE)
        commas = np.flatnonzero(buffer == _COMMA)
        if not len(ends) or len(commas) != len(ends) * (width - 1):
            return None
        per_line = np.diff(np.searchsorted(commas, ends), prepend=0)
        if (per_line != width - 1).any():       # a blank line, a torn row, a merged row
            return None
        line_starts = np.concatenate(([0], ends[:-1] + 1))
        return cls(buffer, line_starts, commas.reshape(len(ends), width - 1), ends)

    def field(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, length) of field `index` on every line."""
        start = self.line_starts if index == 0 else self.commas[:, index - 1] + 1
        end = self.ends if index == self.commas.shape[1] else self.commas[:, index]
        return start, end - start


def _all_plain_ends(buffer: np.ndarray, start: np.ndarray, length: np.ndarray) -> bool:
    """Every non-empty field starts and ends with a byte str.strip() keeps: the bytes are the stripped id."""
    some = length > 0
    return bool(_PLAIN[buffer[start[some]]].all() and _PLAIN[buffer[start[some] + length[some] - 1]].all())


def _may_read_as_bool(fields: _Fields, index: int) -> bool:
    """pandas reads the words true/false (any case) as 1/0 in a float column; float() does not."""
    start, length = fields.field(index)
    maybe = (length == 4) | (length == 5)
    return bool(_TRUE_FALSE_START[fields.buffer[start[maybe]]].any())


def _read_columns(data: bytes, width: int, columns: dict[str, int], timestamp: str):
    """The numeric columns (and epoch timestamps) as floats, symbols and sides as categories; None when
    pandas refuses a value or a side is not buy or sell."""
    use = {columns["symbol"]: "symbol", columns["side"]: "side", columns["price"]: "price",
           columns["qty"]: "qty", columns["fee"]: "fee"}
    dtypes = {"symbol": "category", "side": "category", "price": np.float64, "qty": np.float64, "fee": np.float64}
    if timestamp != "iso":
        use[columns["timestamp"]] = "timestamp"
        dtypes["timestamp"] = np.float64
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, usecols=sorted(use), dtype={i: dtypes[use[i]] for i in use},
                            na_filter=False, quoting=csv.QUOTE_NONE, skip_blank_lines=False, engine="c",
                            low_memory=False)
    except (ValueError, TypeError, pd.errors.ParserError):
        return None
    frame.columns = [use[i] for i in sorted(use)]

    sides = frame["side"].cat
    side_names = [name if name in SIDES else name.strip().lower() for name in sides.categories]
    if any(name not in SIDES for name in side_names):
        return None
    buys = np.array([name == "buy" for name in side_names], dtype=bool)[sides.codes.to_numpy()]

    symbols = frame["symbol"].cat
    names: dict[str, int] = {}
    remap = np.array([names.setdefault(name.strip(), len(names)) for name in symbols.categories], dtype=np.int64)
    codes = remap[symbols.codes.to_numpy()] if len(remap) else np.zeros(0, dtype=np.int64)
    return frame, list(names), codes, buys


def _iso_timestamps(fields: _Fields, index: int) -> np.ndarray | None:
    """Unix seconds of each ISO timestamp; the usual shapes from their digits, others by fromisoformat."""
    start, length = fields.field(index)
    stamps = np.full(fields.count, np.nan)
    done = np.zeros(fields.count, dtype=bool)
    for size in np.unique(length):
        shape = _ISO_SHAPES.get(int(size))
        if shape is None:
            continue
        rows = np.flatnonzero(length == size)
        ok, values = _iso_from_digits(fields.buffer, start[rows], int(size), *shape)
        stamps[rows[ok]] = values[ok]
        done[rows[ok]] = True
    parse = TIMESTAMP_PARSERS["iso"]
    for row in np.flatnonzero(~done).tolist():
        text = fields.buffer[start[row]:start[row] + length[row]].tobytes().decode("utf-8").strip()
        try:
            stamps[row] = parse(text)
        except (ValueError, OverflowError):
            return None        # a bad timestamp: the row-by-row path reports it
    return stamps


def _iso_from_digits(buffer: np.ndarray, base: np.ndarray, size: int, fraction: int,
                     offset: bool) -> tuple[np.ndarray, np.ndarray]:
    """Which of the `size`-byte fields at `base` have the shape, and their Unix seconds."""
    def char(p: int) -> np.ndarray:
        return buffer[base + p]

    digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] + list(range(20, 20 + fraction))
    ok = np.ones(len(base), dtype=bool)
    for p in digits:
        ok &= _DIGIT[char(p)]
    ok &= (char(4) == ord("-")) & (char(7) == ord("-")) & (char(13) == ord(":")) & (char(16) == ord(":"))
    ok &= (char(10) == ord("T")) | (char(10) == ord(" "))
    end = 19
    if fraction:
        ok &= char(19) == ord(".")
        end = 20 + fraction
    if offset:
        ok &= ((char(end) == ord("+")) | (char(end) == ord("-"))) & (char(end + 3) == ord(":"))
        for p in (end + 1, end + 2, end + 4, end + 5):
            ok &= _DIGIT[char(p)]
    elif size > end:
        ok &= char(end) == ord("Z")

    def number(*positions: int) -> np.ndarray:
        value = np.zeros(len(base), dtype=np.int64)
        for p in positions:
            value = value * 10 + (char(p).astype(np.int64) - 48)
        return value

    year, month, day = number(0, 1, 2, 3), number(5, 6), number(8, 9)
    hour, minute, second = number(11, 12), number(14, 15), number(17, 18)
    micros = number(*range(20, 20 + fraction)) * 10 ** (6 - fraction) if fraction else 0
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    days_in = np.where(month_ok, _DAYS_IN_MONTH[np.clip(month, 0, 12)], 0) + ((month == 2) & leap)
    ok &= (year >= 1970) & (year <= 2200) & month_ok & (day >= 1) & (day <= days_in)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    shift = 0
    if offset:
        sign = np.where(char(end) == ord("-"), -1, 1)
        off_hours, off_minutes = number(end + 1, end + 2), number(end + 4, end + 5)
        ok &= (off_hours <= 23) & (off_minutes <= 59)
        shift = sign * (off_hours * 3600 + off_minutes * 60)
    # days from the civil date, in the proleptic Gregorian calendar datetime uses
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - shift
    return ok, (seconds * 1_000_000 + micros) / 1e6
