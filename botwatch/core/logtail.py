"""Following a bot's log like `tail -F` (LineFollower: only what was appended, across rotation and
truncation), and counting the API errors in it (LogTail).

It also keeps the time of the newest line that starts with Python logging's `asctime`
(`2026-11-20 08:00:00,123`, the host's local time): for a bot without an API (Hummingbot) the newest
line is its last sign of life.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from pathlib import Path

from botwatch.core.config_types import ERROR_KINDS

log = logging.getLogger(__name__)

MAX_LINE = 256 * 1024         # a longer "line" is cut: a log with no newlines must not grow our buffer
                              # (a Hummingbot EVENT_LOG fill is a few hundred bytes)
READ_CHUNK = 1024 * 1024
ASCTIME = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:[,.](\d{1,6}))?")
TAIL_BYTES = 64 * 1024


def line_time(raw: bytes) -> float | None:
    """Unix seconds of a line that starts with logging's asctime (local time), else None."""
    match = ASCTIME.match(raw)
    if not match:
        return None
    try:
        seconds = time.mktime(time.strptime(match.group(1).decode(), "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        return None
    fraction = match.group(2)
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def newest_line_time(path: Path | str) -> float | None:
    """The time of the newest timestamped line in the last 64 KiB of a log; None without one."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
            lines = f.read(TAIL_BYTES).split(b"\n")
    except OSError:
        return None
    return next((when for raw in reversed(lines) if (when := line_time(raw)) is not None), None)


class LineFollower:
    """`tail -F` of one file: the whole lines appended since the last read. The file stays open between
    reads, so the rest of a rotated file is read before the new one is opened (its last line, even without
    a newline, is a line); a file that got shorter under the same inode was truncated and is read again
    from its start. A line longer than MAX_LINE is handed on cut, in pieces."""

    def __init__(self, path: Path | str, name: str = ""):
        self.path = Path(path)
        self.name = name or self.path.name
        self._file: io.BufferedReader | None = None
        self._ident: tuple[int, int] | None = None
        self._partial = b""

    def read_lines(self) -> list[bytes]:
        """What was appended since the last call, line by line (without newlines); raises OSError."""
        lines: list[bytes] = []
        if self._file is not None:
            self._drain(lines)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident:
            if self._file is not None:
                log.info("%s: %s was rotated; following the new file", self.name, self.path)
                if self._partial:
                    lines.append(self._partial)
                self.close()
            self._file = open(self.path, "rb")
            self._ident = ident
            self._drain(lines)
        elif st.st_size < self._file.tell():
            log.info("%s: %s was truncated; reading it from the start", self.name, self.path)
            self._file.seek(0)
            self._partial = b""
            self._drain(lines)
        return lines

    def close(self) -> None:
        if self._file:
            self._file.close()
        self._file, self._partial = None, b""

    def _drain(self, lines: list[bytes]) -> None:
        while chunk := self._file.read(READ_CHUNK):
            *whole, self._partial = (self._partial + chunk).split(b"\n")
            lines.extend(whole)
            while len(self._partial) > MAX_LINE:
                lines.append(self._partial[:MAX_LINE])
                self._partial = self._partial[MAX_LINE:]


class LogTail:
    """Counts lines matching each kind's patterns; each line counts once, for the first kind it matches."""

    def __init__(self, path: Path | str, patterns: dict[str, list[re.Pattern]], name: str = ""):
        self.path = Path(path)
        self.patterns = patterns
        self.name = name or self.path.name
        self.counts = dict.fromkeys(ERROR_KINDS, 0)
        self.last_line_time: float | None = None     # of the newest line with a timestamp
        self._lines = LineFollower(self.path, f"{self.name}: log")

    def collect(self) -> dict[str, int]:
        """Read what was appended since the last call; return the running count per kind."""
        try:
            lines = self._lines.read_lines()
        except OSError as err:
            log.debug("%s: log %s: %s", self.name, self.path, err)
            return dict(self.counts)
        for line in lines:
            self._count(line)
        for line in reversed(lines):
            if (when := line_time(line)) is not None:
                self.last_line_time = when
                break
        return dict(self.counts)

    def close(self) -> None:
        self._lines.close()

    def _count(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        for kind in ERROR_KINDS:
            if any(pattern.search(line) for pattern in self.patterns.get(kind, ())):
                self.counts[kind] += 1
                return
