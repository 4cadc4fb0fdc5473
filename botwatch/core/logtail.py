"""Counting API errors in a bot's log, reading only what was appended, across rotation and truncation.

Works like `tail -F`: the file stays open between collections, so when it is rotated (renamed away
and a new one created) the rest of the old file is still read before the new one is opened; a file
that got shorter under the same inode was truncated and is read again from its start.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

from botwatch.core.config import ERROR_KINDS

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024          # a longer "line" is cut: a log with no newlines must not grow our buffer
READ_CHUNK = 1024 * 1024


class LogTail:
    """Counts lines matching each kind's patterns; each line counts once, for the first kind it matches."""

    def __init__(self, path: Path | str, patterns: dict[str, list[re.Pattern]], name: str = ""):
        self.path = Path(path)
        self.patterns = patterns
        self.name = name or self.path.name
        self.counts = dict.fromkeys(ERROR_KINDS, 0)
        self._file: io.BufferedReader | None = None
        self._ident: tuple[int, int] | None = None
        self._partial = b""

    def collect(self) -> dict[str, int]:
        """Read what was appended since the last call; return the running count per kind."""
        try:
            self._follow()
        except OSError as err:
            log.debug("%s: log %s: %s", self.name, self.path, err)
        return dict(self.counts)

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def _follow(self) -> None:
        if self._file is not None:
            self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident:
            if self._file is not None:
                log.info("%s: log %s was rotated; following the new file", self.name, self.path)
                self._flush_partial()
                self.close()
            self._file = open(self.path, "rb")
            self._ident = ident
            self._drain()
        elif st.st_size < self._file.tell():
            log.info("%s: log %s was truncated; reading it from the start", self.name, self.path)
            self._file.seek(0)
            self._partial = b""
            self._drain()

    def _drain(self) -> None:
        while True:
            chunk = self._file.read(READ_CHUNK)
            if not chunk:
                return
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            if len(self._partial) > MAX_LINE:
                lines.append(self._partial[:MAX_LINE])
                self._partial = b""
            for line in lines:
                self._count(line)

    def _flush_partial(self) -> None:
        if self._partial:
            self._count(self._partial)
            self._partial = b""

    def _count(self, raw: bytes) -> None:
        line = raw[:MAX_LINE].decode("utf-8", "replace")
        for kind in ERROR_KINDS:
            if any(pattern.search(line) for pattern in self.patterns.get(kind, ())):
                self.counts[kind] += 1
                return
