"""The restore procedure for a bot's SQLite trade database (Freqtrade's, Hummingbot's): stop, quarantine
the database and its -wal/-shm, restore the newest good backup, put in what it lacks (the store's
`fill_in`: freqtrade.py, hummingbot.py), check, replace, start, verify.

The -wal and -shm go with the database: a write-ahead log left beside a restored file would be replayed
into it. As for CSV files, nothing is touched without a good backup, nothing is ever deleted or
overwritten, and the restored file must pass `PRAGMA integrity_check` and the exporter's own check before
it replaces anything.

`on_step` is told each step done (SQLITE_STEPS), as the CSV procedure's is: the playbook records it, so that
a remediator killed after the file was replaced finishes the run instead of doing it again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot
from botwatch.remediator.restore.backup import BackupStore, Manifest
from botwatch.remediator.restore.backup_sqlite import check_database_file
from botwatch.remediator.restore.csvfile import (RestoreFailed, RestoreReport, newest_backup, quarantine,
                                                 replace_and_start, temp_path, write_temp)

# fill_in(restored copy, report, the backup's manifest): adds the fills the backup lacks, says how many
FillIn = Callable[[Path, RestoreReport, Manifest], None]
SQLITE_STEPS = ("planned", "stopped", "quarantined", "written", "built", "replaced", "started")


def restore_database(bot: Bot, store: BackupStore | None, runtime, check_alive: Callable, fill_in: FillIn,
                     clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                     verify_after: float = 1.0, verify_within: float = 60.0, on_step: Callable[[str], None] = lambda step: None) -> RestoreReport:
    """The whole procedure; raises RestoreFailed (after touching nothing, where it says so)."""
    report = RestoreReport(bot.name)
    good = newest_backup(bot, store, clock, report)
    if good is None:
        raise RestoreFailed(f"no good backup of the database: nothing touched ({report.detail or 'no backups'})")
    report.backup = good[0].name
    report.say(f"restoring from backup {good[0].name}")
    on_step("planned")

    runtime.stop()
    report.say("bot stopped")
    on_step("stopped")
    moved = [quarantine(Path(f"{bot.data_file}{suffix}"), clock()) for suffix in ("", "-wal", "-shm")]
    report.quarantine = moved[0]
    report.say("kept aside: " + (", ".join(m.name for m in moved if m) or "nothing (already moved)"))
    on_step("quarantined")

    for suffix in ("-journal", "-wal", "-shm"):   # an interrupted run's: SQLite would roll them into the new copy
        Path(f"{temp_path(bot.data_file)}{suffix}").unlink(missing_ok=True)
    tmp = write_temp(bot.data_file, good[1])
    on_step("written")
    try:
        fill_in(tmp, report, good[0])
    except sqlite3.Error as err:
        raise RestoreFailed(f"replaying the missing fills into the backup failed: {err}; data file moved aside, "
                            "bot stopped") from None
    valid, rows, _, _, problem = check_database_file(tmp, bot.name, bot.store)
    if not valid:
        raise RestoreFailed(f"the restored database does not validate ({problem}); data file moved aside, bot stopped")
    report.rows = rows
    report.say(f"{rows} rows validate")
    on_step("built")
    replace_and_start(tmp, bot.data_file, runtime, check_alive, clock, sleep, verify_after, verify_within, report,
                      on_step, f"database restored ({rows} rows)")
    report.say("verified: bot up")
    return report
