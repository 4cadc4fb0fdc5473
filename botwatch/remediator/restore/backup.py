"""Backups of trade files: only a file that validates is kept, with a manifest entry, in a local folder or S3.

A backup is a snapshot: the file's bytes up to its last complete line, validated as they are, so a bot
appending meanwhile can't make the copy differ from what was checked. Each backup `NAME.csv` has a
manifest `NAME.json` beside it (sha256, size, rows, first/last trade timestamp and id, created).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Protocol

from botwatch.core.book import Trade
from botwatch.core.config import Backup, Bot
from botwatch.core.files import progress, write_atomic
from botwatch.core.tradefile import DataFileCheck
from botwatch.core import presets
from botwatch.remediator.restore.backup_sqlite import check_database, snapshot_database

log = logging.getLogger(__name__)


class BackupError(Exception):
    """A store could not be read or written; the message names the store and what failed."""


@dataclass(frozen=True)
class Manifest:
    bot: str
    name: str
    sha256: str
    size: int
    rows: int
    first_ts: float | None
    last_ts: float | None
    first_id: str | None
    last_id: str | None
    created: float
    kind: str = "csv"          # the trade store: csv, or the preset whose SQLite database it is

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        return cls(**json.loads(text))

    @property
    def suffix(self) -> str:
        return ".sqlite" if presets.KINDS.get(self.kind, presets.kind_of(None)).database else ".csv"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


class BackupStore(Protocol):
    description: str

    def put(self, manifest: Manifest, data: bytes) -> None: ...
    def manifests(self, bot: str) -> list[Manifest]: ...
    def get(self, manifest: Manifest) -> bytes: ...
    def delete(self, manifest: Manifest) -> None: ...


class LocalStore:
    """DIR/BOT/NAME.csv + NAME.json; written to a temp name, fsynced and renamed, manifest last."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.description = f"local folder {self.root}"

    def put(self, manifest: Manifest, data: bytes) -> None:
        folder = self.root / manifest.bot
        try:
            write_atomic(folder / f"{manifest.name}{manifest.suffix}", data, label=f"backup {manifest.bot}")
            write_atomic(folder / f"{manifest.name}.json", manifest.to_json())
        except OSError as err:
            raise BackupError(f"{self.description}: cannot write {manifest.name}: {err.strerror}") from None

    def manifests(self, bot: str) -> list[Manifest]:
        found = []
        for path in sorted((self.root / bot).glob("*.json")):
            try:
                found.append(Manifest.from_json(path.read_text()))
            except (OSError, ValueError, TypeError) as err:
                log.warning("%s: unreadable manifest %s skipped: %s", bot, path, err)
        return sorted(found, key=lambda m: m.created)

    def get(self, manifest: Manifest) -> bytes:
        try:
            return (self.root / manifest.bot / f"{manifest.name}{manifest.suffix}").read_bytes()
        except OSError as err:
            raise BackupError(f"{self.description}: cannot read {manifest.name}: {err.strerror}") from None

    def delete(self, manifest: Manifest) -> None:
        for suffix in (".json", manifest.suffix):   # manifest first: a half-deleted backup is never listed
            (self.root / manifest.bot / f"{manifest.name}{suffix}").unlink(missing_ok=True)


class S3Store:
    """s3://BUCKET/PREFIX/BOT/NAME.csv + .json through boto3; credentials the usual boto3 ways."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 client=None):
        import boto3
        from botocore.config import Config as BotoConfig
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.description = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=BotoConfig(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}))

    def _key(self, manifest: Manifest, suffix: str) -> str:
        return f"{self.prefix}{manifest.bot}/{manifest.name}{suffix}"

    def _call(self, what: str, fn, *args, **kwargs):
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return fn(*args, **kwargs)
        except S3UploadFailedError as err:     # upload_fileobj wraps the ClientError in its message
            raise BackupError(f"{self.description}: {what}: {err}") from None
        except ClientError as err:
            error = err.response.get("Error", {})
            raise BackupError(f"{self.description}: {what}: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as err:
            raise BackupError(f"{self.description}: {what}: {err}") from None

    def put(self, manifest: Manifest, data: bytes) -> None:
        with progress(len(data), f"backup {manifest.bot}") as advance:
            self._call(f"upload {manifest.name}", self.client.upload_fileobj, io.BytesIO(data), self.bucket,
                       self._key(manifest, manifest.suffix), Callback=advance,
                       ExtraArgs={"ContentType": "text/csv", "Metadata": {"sha256": manifest.sha256}})
        self._call(f"upload {manifest.name} manifest", self.client.put_object, Bucket=self.bucket,
                   Key=self._key(manifest, ".json"), Body=manifest.to_json().encode(), ContentType="application/json")

    def manifests(self, bot: str) -> list[Manifest]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list backups", lambda: list(paginator.paginate(Bucket=self.bucket,
                                                                           Prefix=f"{self.prefix}{bot}/")))
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"].endswith(".json"):
                    body = self._call("read a manifest", self.client.get_object, Bucket=self.bucket, Key=item["Key"])
                    try:
                        found.append(Manifest.from_json(body["Body"].read()))
                    except (ValueError, TypeError) as err:
                        log.warning("%s: unreadable manifest %s skipped: %s", bot, item["Key"], err)
        return sorted(found, key=lambda m: m.created)

    def get(self, manifest: Manifest) -> bytes:
        body = self._call(f"download {manifest.name}", self.client.get_object, Bucket=self.bucket,
                          Key=self._key(manifest, manifest.suffix))
        return body["Body"].read()

    def delete(self, manifest: Manifest) -> None:
        for suffix in (".json", manifest.suffix):
            self._call(f"delete {manifest.name}", self.client.delete_object, Bucket=self.bucket,
                       Key=self._key(manifest, suffix))


def store_for(backup: Backup) -> BackupStore:
    """S3 when `backup.s3` is configured, else the local folder `backup.dir`."""
    if backup.s3:
        return S3Store(backup.s3.bucket, backup.s3.prefix, backup.s3.endpoint_url, backup.s3.region)
    return LocalStore(backup.dir)


class _Collector:
    """Keeps the first and last fill of a validated snapshot, for the manifest."""

    def __init__(self):
        self.first: Trade | None = None
        self.last: Trade | None = None

    def reset(self) -> None:
        self.first = self.last = None

    def add(self, trade: Trade) -> None:
        self.first = self.first or trade
        self.last = trade


@dataclass(frozen=True)
class SnapshotCheck:
    valid: bool
    rows: int
    first: Trade | None
    last: Trade | None
    problem: str | None


def check_snapshot(data: bytes, bot: Bot, clock: Callable[[], float] = time.time) -> SnapshotCheck:
    """Validate bytes as the bot's trade store with the exporter's own check (through a private temp file)."""
    if bot.kind.database:
        return SnapshotCheck(*check_database(data, bot.name, bot.store))
    with tempfile.NamedTemporaryFile(prefix="botwatch-check-", suffix=".csv") as tmp:
        tmp.write(data)
        tmp.flush()
        collector = _Collector()
        status = DataFileCheck(tmp.name, bot.data_format, collector, clock, name=bot.name).collect()
        unterminated = bool(data) and not data.endswith(b"\n")
        valid = status.valid and not unterminated
        problem = status.first_problem or ("torn_row: no newline at the end" if unterminated else None)
        return SnapshotCheck(valid, status.rows, collector.first, collector.last, problem)


def snapshot(path: Path, store: str = "csv") -> bytes:
    """A consistent copy of the store: for a CSV file its bytes up to its last complete line (a row being
    appended right now is left out), for a database SQLite's online backup."""
    if presets.kind_of(store).database:
        return snapshot_database(path)
    data = Path(path).read_bytes()
    end = data.rfind(b"\n")
    return data[:end + 1] if end >= 0 else b""


@dataclass(frozen=True)
class BackupResult:
    bot: str
    outcome: str           # success | skipped | failed
    detail: str
    manifest: Manifest | None = None


def backup_bot(bot: Bot, store: BackupStore, clock: Callable[[], float] = time.time) -> BackupResult:
    """Back up the bot's trade file if it validates; never raises for a bad file or a dead store."""
    if not bot.data_file.exists():
        return BackupResult(bot.name, "skipped", f"{bot.data_file} does not exist")
    try:
        data = snapshot(bot.data_file, bot.store)
    except (OSError, sqlite3.Error) as err:
        return BackupResult(bot.name, "failed", f"cannot read {bot.data_file}: {getattr(err, 'strerror', None) or err}")
    check = check_snapshot(data, bot, clock)
    if not check.valid:
        return BackupResult(bot.name, "skipped", f"not backed up: the file does not validate ({check.problem})")
    now = clock()
    name = f"{bot.name}-{datetime.fromtimestamp(now, timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"
    manifest = Manifest(bot.name, name, hashlib.sha256(data).hexdigest(), len(data), check.rows,
                        check.first.timestamp if check.first else None, check.last.timestamp if check.last else None,
                        check.first.trade_id if check.first else None, check.last.trade_id if check.last else None,
                        now, bot.store)
    try:
        store.put(manifest, data)
    except BackupError as err:
        return BackupResult(bot.name, "failed", str(err))
    return BackupResult(bot.name, "success", f"{manifest.rows} rows, {manifest.size} bytes to {store.description}",
                        manifest)


def retention(manifests: list[Manifest], keep_hourly: int, keep_daily: int) -> list[Manifest]:
    """The backups to delete: all but the newest `keep_hourly`, and the newest of each of `keep_daily` days."""
    newest_first = sorted(manifests, key=lambda m: m.created, reverse=True)
    keep = {m.name for m in newest_first[:keep_hourly]}
    days: list[str] = []
    for m in newest_first:
        day = datetime.fromtimestamp(m.created, timezone.utc).strftime("%Y-%m-%d")
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                keep.add(m.name)
    return [m for m in manifests if m.name not in keep]


def prune(bot: str, store: BackupStore, keep_hourly: int, keep_daily: int) -> int:
    doomed = retention(store.manifests(bot), keep_hourly, keep_daily)
    for manifest in doomed:
        store.delete(manifest)
    return len(doomed)


def verified(manifest: Manifest, data: bytes) -> bool:
    return len(data) == manifest.size and hashlib.sha256(data).hexdigest() == manifest.sha256


def newest_good(bot: Bot, store: BackupStore, clock: Callable[[], float] = time.time) -> Iterator[tuple[Manifest, bytes]]:
    """Backups newest first whose checksum verifies and whose content validates; tampered ones are skipped."""
    for manifest in reversed(store.manifests(bot.name)):
        try:
            data = store.get(manifest)
        except BackupError as err:
            log.warning("%s: backup %s unreadable, skipped: %s", bot.name, manifest.name, err)
            continue
        if not verified(manifest, data):
            log.warning("%s: backup %s fails its checksum (tampered or damaged), skipped", bot.name, manifest.name)
            continue
        check = check_snapshot(data, bot, clock)
        if not check.valid:
            log.warning("%s: backup %s does not validate (%s), skipped", bot.name, manifest.name, check.problem)
            continue
        yield manifest, data
