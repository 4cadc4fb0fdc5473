"""The restore procedure: stop, quarantine, restore the last good backup, replay the journal, verify, start.

Made safe:
- nothing is touched unless there is something to restore from (a good backup or the journal);
- the corrupt file is moved aside under a timestamped quarantine name, never deleted or overwritten;
- the new file is written to a temp file, fsynced and renamed over the data file, so the data file is
  always either the old one or the new one — a crash at any step leaves the quarantine, and running the
  restore again finishes the job;
- the result must validate with the exporter's own check before it replaces anything.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Protocol

from botwatch.core.config import COLUMNS, Bot
from botwatch.core.units import format_duration
from botwatch.core.files import fsync_dir, write_chunks
from botwatch.remediator.restore.backup import BackupError, BackupStore, check_snapshot, newest_good, snapshot
from botwatch.remediator.restore.exchange_fills import ExchangeSource
from botwatch.remediator.verify import verify

log = logging.getLogger(__name__)

STEPS = ("planned", "stopped", "quarantined", "built", "written", "replaced", "started")


class RestoreFailed(Exception):
    """The restore could not be done; the message says why and what was (not) touched."""


class TradeSource(Protocol):
    """Where missing trades come from: the bot's journal here; an exchange's trade history could be another."""

    description: str

    def fills(self) -> Iterable[dict]: ...


class JournalSource:
    """The bot's JSONL journal: one object per fill with the trade-file fields, in fill order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = f"journal {self.path}"

    def available(self) -> bool:
        return self.path.is_file()

    def fills(self) -> Iterable[dict]:
        with open(self.path, encoding="utf-8", errors="replace") as journal:
            for number, line in enumerate(journal, 1):
                if not line.strip():
                    continue
                try:
                    fill = json.loads(line)
                except ValueError:
                    if line.endswith("\n"):
                        log.warning("%s line %d is not JSON; skipped", self.path, number)
                    continue   # an unterminated last line is a write cut short: not a fill yet
                if isinstance(fill, dict) and all(k in fill for k in COLUMNS):
                    yield fill


@dataclass
class RestoreReport:
    bot: str
    steps: list[str] = field(default_factory=list)
    quarantine: Path | None = None
    backup: str | None = None
    from_backup: int = 0
    replayed: int = 0
    rows: int = 0
    sources: dict[str, int] = field(default_factory=dict)   # fills put back, by where they came from
    missing: list[str] = field(default_factory=list)        # what a source could not be asked (the exchange)

    def say(self, text: str) -> None:
        log.info("%s: restore: %s", self.bot, text)
        self.steps.append(text)

    @property
    def detail(self) -> str:
        return "; ".join(self.steps)


def _format_ts(value: str, style: str) -> str:
    if style == "iso":
        return value
    seconds = datetime.fromisoformat(value).timestamp()
    return f"{seconds:.3f}" if style == "epoch_s" else str(int(round(seconds * 1000)))


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _when(fill: dict) -> float:
    try:
        return datetime.fromisoformat(str(fill["timestamp"])).timestamp()
    except ValueError:
        return float("inf")


def build(bot: Bot, backup: bytes | None, sources: list[TradeSource], report: RestoreReport) -> bytes:
    """The backup's rows, then every fill of the sources whose trade_id the backup lacks, each once, in time
    order. A source's fill older than the backup's last row is not one the backup lacks (the file is
    appended in time order): it is left out, so an exchange's overlap margin adds nothing twice."""
    names = bot.data_format.header_names()
    last_backup_ts = float("-inf")
    if backup:
        header_line, _, body = backup.partition(b"\n")
        header = [h.strip() for h in next(csv.reader([header_line.decode("utf-8-sig")]))]
        out = [header_line + b"\n", body]
        id_column = header.index(names["trade_id"])
        ts_column = header.index(names["timestamp"])
        rows = [row for row in csv.reader(body.decode("utf-8").splitlines()) if len(row) > id_column]
        known = {row[id_column] for row in rows}
        if rows:
            last_backup_ts = _row_time(rows[-1][ts_column], bot.data_format.timestamp)
        report.from_backup = len(known)
    else:
        header = [names[column] for column in COLUMNS]
        out = [_csv_line(header).encode()]
        known = set()
    by_name = {name: column for column, name in names.items()}
    new: list[tuple[float, dict]] = []
    for source in sources:
        added = 0
        for fill in source.fills():
            trade_id = str(fill["trade_id"])
            when = _when(fill)
            if trade_id in known or when < last_backup_ts:
                continue
            known.add(trade_id)
            new.append((when, fill))
            added += 1
        report.sources[source.description] = added
    new.sort(key=lambda pair: pair[0])          # stable: one source's own order stands among equal times
    for _, fill in new:
        values = []
        for name in header:
            column = by_name.get(name)
            value = str(fill[column]) if column else ""
            values.append(_format_ts(value, bot.data_format.timestamp) if column == "timestamp" else value)
        out.append(_csv_line(values).encode())
        report.replayed += 1
    return b"".join(out)


def _first_fill_time(source: TradeSource | None) -> float:
    """When the journal's first fill happened: the exchange is asked from there when there is no backup."""
    for fill in source.fills() if source else ():
        when = _when(fill)
        if when != float("inf"):
            return when
    return time.time()


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _row_time(value: str, style: str) -> float:
    try:
        if style == "iso":
            return datetime.fromisoformat(value).timestamp()
        return float(value) / (1000 if style == "epoch_ms" else 1)
    except ValueError:
        return float("-inf")


def quarantine_name(path: Path, now: float) -> Path:
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return candidate


def quarantine(path: Path, now: float) -> Path | None:
    """Move the data file aside without ever overwriting anything (link, then unlink)."""
    if not path.exists():
        return None
    while True:
        target = quarantine_name(path, now)
        try:
            os.link(path, target)        # fails if target exists: never overwrites
            break
        except FileExistsError:
            continue
    os.unlink(path)
    fsync_dir(path.parent)
    return target


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.restore-tmp")


def write_temp(path: Path, data: bytes) -> Path:
    """The new content beside the data file, fsynced; a leftover from an interrupted run is overwritten."""
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        write_chunks(f, data, f"restore {path.name}")
        f.flush()
        os.fsync(f.fileno())
    return tmp


def move_into_place(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)      # atomic: readers see the old file or the new one, never half of either
    fsync_dir(path.parent)


def newest_backup(bot: Bot, store: BackupStore | None, clock: Callable[[], float],
                  report: RestoreReport) -> tuple | None:
    """(manifest, bytes) of the newest backup that verifies and validates, or None (the report says why)."""
    if store is None:
        return None
    try:
        return next(newest_good(bot, store, clock), None)
    except BackupError as err:
        report.say(f"backups unreachable: {err}")
        return None


def replace_and_start(tmp: Path, data_file: Path, runtime, check_alive: Callable, clock: Callable[[], float],
                      sleep: Callable[[float], None], verify_after: float, verify_within: float,
                      report: RestoreReport, on_step: Callable[[str], None], done: str) -> None:
    """A restore's last steps: the rebuilt copy in place of the data file, then start the bot and look from
    verify_after until it is up or verify_within passed (a bot that replays a long journal at start is up a
    moment later, not "not up")."""
    move_into_place(tmp, data_file)
    report.say(f"{data_file.name} replaced")
    on_step("replaced")
    runtime.start()
    report.say("bot started")
    on_step("started")
    verdict = verify(lambda: (lambda alive: (alive.up, alive))(check_alive()), clock, sleep, verify_after, verify_within)
    took = format_duration(round(verdict.waited, 1))
    if not verdict.ok:
        raise RestoreFailed(f"{done} but the bot is not up after {took}: {verdict.last.detail}")
    report.say(f"bot up after {took}")


def restore(bot: Bot, store: BackupStore | None, runtime, check_alive: Callable, clock: Callable[[], float] = time.time,
            sleep: Callable[[float], None] = time.sleep, verify_after: float = 1.0, verify_within: float = 60.0,
            source: TradeSource | None = None, on_step: Callable[[str], None] = lambda step: None) -> RestoreReport:
    """Run the whole procedure; raises RestoreFailed (after touching nothing, where it says so)."""
    report = RestoreReport(bot.name)
    if source is None and bot.journal:
        journal = JournalSource(bot.journal)
        source = journal if journal.available() else None
    good = newest_backup(bot, store, clock, report)
    if good is None and source is None:
        raise RestoreFailed(f"no good backup and no journal to rebuild from: nothing touched ({report.detail or 'no backups'})")
    report.backup = good[0].name if good else None
    report.say(f"restoring from backup {good[0].name}" if good else "no good backup: rebuilding from the journal")
    on_step("planned")

    runtime.stop()
    report.say("bot stopped")
    on_step("stopped")

    moved = quarantine(bot.data_file, clock())
    report.quarantine = moved
    report.say(f"corrupt file kept as {moved.name}" if moved else "no data file to quarantine (already moved aside)")
    on_step("quarantined")

    sources = [source] if source else []
    if bot.replay is not None:
        since = (good[0].last_ts or good[0].created) if good else _first_fill_time(source)
        exchange = ExchangeSource(bot.replay, since - bot.replay.margin, clock(), sleep=sleep)
        sources.append(exchange)
    data = build(bot, good[1] if good else None, sources, report)
    if bot.replay is not None and exchange.result is not None:
        report.missing = exchange.result.missing
        report.say(f"asked {bot.replay.exchange} for fills since {_utc(since - bot.replay.margin)} "
                   f"({exchange.result.requests} requests, {len(exchange.result.fills)} fills)"
                   + (f"; not checked: {'; '.join(exchange.result.missing)}" if exchange.result.missing else ""))
    check = check_snapshot(data, bot, clock)
    if not check.valid:
        raise RestoreFailed(f"the rebuilt file does not validate ({check.problem}); data file left "
                            f"{'moved aside' if moved else 'as it was'}, bot stopped")
    report.rows = check.rows
    counts = ", ".join(f"{count} replayed from {where}" for where, count in report.sources.items()) or "none replayed"
    report.say(f"{report.from_backup} trades from the backup, {counts}; {check.rows} rows validate")
    on_step("built")

    tmp = write_temp(bot.data_file, data)
    on_step("written")
    replace_and_start(tmp, bot.data_file, runtime, check_alive, clock, sleep, verify_after, verify_within, report,
                      on_step, f"file restored ({report.rows} rows)")
    after = check_snapshot(snapshot(bot.data_file), bot, clock)
    if not after.valid:
        raise RestoreFailed(f"the bot is up but its file no longer validates: {after.problem}")
    report.say(f"verified: bot up, file valid ({after.rows} rows)")
    return report
