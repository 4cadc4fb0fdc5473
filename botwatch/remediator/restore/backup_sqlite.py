"""Backups of a bot's SQLite trade database: SQLite's online backup API, never a copy of the live file.

A copy of the file while the bot writes can be torn (and in WAL mode leaves the newest pages behind in
the -wal); the backup API copies a consistent snapshot in one read transaction, which in WAL mode never
blocks the bot's writer. The snapshot is made a single file (rollback journal) and counts as a backup
only if `PRAGMA integrity_check` passes and the exporter's own store check finds it valid.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from botwatch.core.book import Trade
from botwatch.core.presets import open_database
from botwatch.core.stores.sqlite_check import connect_ro


def snapshot_database(path: Path) -> bytes:
    """A consistent copy of the database, as the bytes of one self-contained SQLite file."""
    source = connect_ro(path)
    try:
        with tempfile.TemporaryDirectory(prefix="botwatch-snapshot-") as folder:
            copy_path = Path(folder) / "snapshot.sqlite"
            copy = sqlite3.connect(copy_path)
            try:
                source.backup(copy)                 # all pages in one step: one consistent snapshot
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
            return copy_path.read_bytes()
    finally:
        source.close()


def integrity_problem(path: Path) -> str | None:
    """What `PRAGMA integrity_check` finds wrong with the database at `path`, or None."""
    try:
        connection = connect_ro(path)
        try:
            rows = [row[0] for row in connection.execute("PRAGMA integrity_check(20)")]
        finally:
            connection.close()
    except sqlite3.Error as err:
        return f"integrity_check: {err}"
    return None if rows == ["ok"] else "integrity_check: " + "; ".join(rows)[:300]


def check_database(data: bytes, bot_name: str, kind: str = "freqtrade"
                   ) -> tuple[bool, int, Trade | None, Trade | None, str | None]:
    """(valid, rows, first trade, last trade, problem) of database bytes, checked in a private temp file."""
    with tempfile.TemporaryDirectory(prefix="botwatch-check-") as folder:
        path = Path(folder) / "check.sqlite"
        path.write_bytes(data)
        return check_database_file(path, bot_name, kind)


def check_database_file(path: Path, bot_name: str, kind: str = "freqtrade"
                        ) -> tuple[bool, int, Trade | None, Trade | None, str | None]:
    """The same, of a database file: `PRAGMA integrity_check`, then the exporter's own store check."""
    if Path(path).stat().st_size == 0:     # a database SQLite has not written yet: nothing to keep or restore
        return False, 0, None, None, "empty: no database yet"
    problem = integrity_problem(path)
    if problem:
        return False, 0, None, None, problem
    store = open_database(kind, path, name=bot_name)
    status = store.collect()
    if not status.valid:
        return False, status.rows, None, None, status.first_problem
    return True, status.rows, *store.ends, None
