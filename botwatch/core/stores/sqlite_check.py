"""What every SQLite trade store checks before it reads a row: is the file a database, whole and sound;
and `SqliteStore`, the part of such a store that is the same for every bot (Freqtrade's, Hummingbot's).

Read-only (`mode=ro`) and short: a check opens the database only when its file (or its `-wal`) changed,
reads in one transaction, and closes. In WAL mode (Freqtrade's) a reader never blocks the bot's writer;
in rollback mode the transaction holds a shared lock only while it reads.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from botwatch.core.tradefile import DataFileStatus

log = logging.getLogger(__name__)

CHECKS = (
    "missing",          # no file at data_file
    "unreadable",       # it exists but can't be opened (permissions)
    "not_a_database",   # not an SQLite file, or its header is gone
    "truncated",        # shorter than its header says
    "damaged",          # PRAGMA quick_check or a read found damaged pages
    "schema",           # a table or column the bot writes and botwatch reads is missing
    "values",           # a row with impossible values
    "replaced",         # different trade history under the same file (another database copied over it)
)

HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT = 0.2        # seconds: a locked database is "can't tell now", never a wait on the bot
# A file system stamps mtimes with a coarse clock (a few ms; 1-2 s on some), so a commit just after a read
# can leave the stat as that read saw it. A file written this close to the last read is read again (git's
# "racily clean" entries); once it is older, an unchanged stat means an unchanged database.
RACY_WINDOW = 2.0


class Unreadable(Exception):
    """The database could not be read now (locked, permission): no verdict, try at the next check."""


class Corrupt(Exception):
    """The database is damaged; `check` names the kind (the `check` label), the message says how."""

    def __init__(self, check: str, detail: str):
        super().__init__(detail)
        self.check = check


@dataclass(frozen=True)
class FileState:
    """What changes when anything writes the database: compared, not read, at every check."""

    inode: int
    size: int
    mtime_ns: int
    wal: tuple[int, int] | None

    @property
    def written(self) -> float:
        """Unix seconds of the newest write, to the database or its WAL."""
        return max(self.mtime_ns, self.wal[1] if self.wal else 0) / 1e9

    @classmethod
    def of(cls, path: Path) -> "FileState":
        st = os.stat(path)
        try:
            wal_st = os.stat(f"{path}-wal")
            wal = (wal_st.st_size, wal_st.st_mtime_ns)
        except FileNotFoundError:
            wal = None
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, wal)


def check_header(path: Path, size: int) -> None:
    """The file is an SQLite database whose header agrees with its size (a truncated copy does not)."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as err:
        raise Unreadable(f"{path}: {err.strerror}") from None
    if not header.startswith(HEADER):
        raise Corrupt("not_a_database", f"{path} does not start with the SQLite header")
    if len(header) < 100:
        raise Corrupt("truncated", f"{path} is shorter than an SQLite header")


def pages_claimed(path: Path) -> int | None:
    """Bytes the header says the database has, when that field is valid (SQLite ≥ 3.7.0 keeps it)."""
    with open(path, "rb") as f:
        header = f.read(100)
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages, valid_for = (struct.unpack(">I", header[o:o + 4])[0] for o in (24, 28, 92))
    return pages * page_size if pages and valid_for == change_counter else None


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection that never creates the file and gives up at once on a lock."""
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA query_only = 1")
    return connection


def quick_check(connection: sqlite3.Connection, path: Path, size: int) -> None:
    """SQLite's own structural check; a file shorter than its header claims is truncated, not damaged."""
    rows = [row[0] for row in connection.execute("PRAGMA quick_check(20)")]
    if rows != ["ok"]:
        raise Corrupt(_damage_kind(path, size), f"quick_check: {'; '.join(rows)[:300]}")


def classify(err: sqlite3.Error, path: Path, size: int) -> Exception:
    """An sqlite3 error as Corrupt (the file is bad) or Unreadable (it can't be read now)."""
    text = str(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text or "unable to open" in text):
        return Unreadable(text)
    if "not a database" in text:
        return Corrupt("not_a_database", text)
    if isinstance(err, sqlite3.DatabaseError):
        return Corrupt(_damage_kind(path, size), text)
    return Unreadable(text)


def _damage_kind(path: Path, size: int) -> str:
    try:
        claimed = pages_claimed(path)
    except OSError:
        return "damaged"
    return "truncated" if claimed is not None and size < claimed else "damaged"


def missing_columns(connection: sqlite3.Connection, schema: dict[str, tuple[str, ...]]) -> list[str]:
    """`table.column` for each one the store needs that the database lacks (`table` for a whole table)."""
    missing = []
    for table, columns in schema.items():
        have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if not have:
            missing.append(table)
        else:
            missing += [f"{table}.{column}" for column in columns if column not in have]
    return missing


class SqliteStore:
    """A bot's SQLite trade database as a store: validity as a state, read only when the file changed.

    A subclass names its SCHEMA (the tables and columns it reads) and reads what is new in
    `_read_rows(connection)`, inside one read transaction, raising Corrupt for what is wrong; `_forget()`
    drops what it read, `_counts()` says (rows, trades, time of the newest trade).
    """

    SCHEMA: dict[str, tuple[str, ...]] = {}

    def __init__(self, path: Path | str, name: str = ""):
        self.path = Path(path)
        self.name = name or self.path.name
        self._file: FileState | None = None
        self._schema_seen = False        # the bot's database has had every table this store reads
        self._read_at = 0.0              # when the last read began (time.time())
        self._seen = False               # the file has existed while watched
        self._reset()
        self._status = self._build_status(None)

    def _reset(self) -> None:
        self._corrupt = False
        self._problems = dict.fromkeys(CHECKS, 0)
        self._first_problem: str | None = None
        self._forget()

    def _forget(self) -> None:
        raise NotImplementedError

    def _read_rows(self, connection: sqlite3.Connection) -> None:
        raise NotImplementedError

    def _counts(self) -> tuple[int, int, float | None]:
        raise NotImplementedError

    def collect(self) -> DataFileStatus:
        """Validate what changed since the last call; the store's state now."""
        try:
            state = FileState.of(self.path)
        except FileNotFoundError:
            return self._absent("missing", f"{self.path} does not exist")
        except OSError as err:
            return self._absent("unreadable", f"{self.path}: {err.strerror}")
        if state == self._file and state.written < self._read_at - RACY_WINDOW:
            return self._status
        if self._file is None or state.inode != self._file.inode or self._corrupt:
            self._reset()     # a new file, or a corrupt one that changed: validated from scratch
        read_at = time.time()
        try:
            self._read(state)
        except Unreadable as err:
            log.info("%s: %s can't be read now (%s); next check tries again", self.name, self.path, err)
            return self._status
        except Corrupt as err:
            self._mark(err.check, str(err))
        self._file, self._seen, self._read_at = state, True, read_at
        self._status = self._build_status(state)
        return self._status

    def _read(self, state: FileState) -> None:
        if state.size == 0:      # SQLite creates the file, then writes its first page: a new database, no verdict
            rows = self._counts()[0]
            if rows:
                raise Corrupt("truncated", f"{self.path} is empty: it held {rows} rows")
            raise Unreadable(f"{self.path} is empty: being created")
        check_header(self.path, state.size)
        try:
            connection = connect_ro(self.path)
        except sqlite3.Error as err:
            raise classify(err, self.path, state.size) from None
        try:
            connection.execute("BEGIN")          # one snapshot for every query below
            quick_check(connection, self.path, state.size)
            missing = missing_columns(connection, self.SCHEMA)
            if missing and not self._schema_seen:     # the bot is still creating its tables: no verdict yet
                raise Unreadable(f"{self.path}: tables being created (missing {', '.join(missing)})")
            if missing:
                raise Corrupt("schema", f"missing {', '.join(missing)}")
            self._schema_seen = True
            self._read_rows(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as err:
            raise classify(err, self.path, state.size) from None
        except UnicodeDecodeError as err:     # text SQLite hands back that is not UTF-8: damaged bytes
            raise Corrupt(_damage_kind(self.path, state.size), f"text that is not UTF-8 ({err.reason})") from None
        finally:
            connection.close()

    def _mark(self, check: str, detail: str) -> None:
        if not self._corrupt:
            log.warning("%s: %s is corrupt (%s): %s", self.name, self.path, check, detail)
        self._corrupt = True
        self._problems[check] = 1
        self._first_problem = self._first_problem or f"{check}: {detail}"

    def _absent(self, check: str, detail: str) -> DataFileStatus:
        self._seen = self._seen or self._file is not None
        self._file = None
        problems = dict(self._problems, missing=0, unreadable=0)
        problems[check] = 1
        rows, trades, last_trade = self._counts()
        seen = check != "missing" or self._seen
        if check == "missing":
            detail += " (it existed: it vanished)" if seen else " yet"
        return DataFileStatus(False, problems, rows, trades, None, last_trade, detail, CHECKS,
                              present=check != "missing", seen=seen)

    def _build_status(self, state: FileState | None) -> DataFileStatus:
        last_write = None
        if state is not None:
            last_write = max(state.mtime_ns, state.wal[1] if state.wal else 0) / 1e9
        rows, trades, last_trade = self._counts()
        return DataFileStatus(not self._corrupt, dict(self._problems), rows, trades, last_write, last_trade,
                              self._first_problem, CHECKS)
