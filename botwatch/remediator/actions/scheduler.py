"""When the daily report is due: `report.at` in `report.timezone`, DST-correct, with a catch-up rule.

A report missed because the remediator was down at its time goes out at start-up if it is less than
CATCH_UP late; later than that it is skipped and the next day's comes as usual. Two remediators (HA)
claim each day's report in a shared place before sending, so only one sends it.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

CATCH_UP = timedelta(hours=3)


def _occurrence(day: date, at: str, zone: ZoneInfo) -> datetime:
    hour, minute = (int(part) for part in at.split(":"))
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    # a time that does not exist that day (clocks spring forward over it) comes out an hour later, once
    return local.astimezone(timezone.utc)


def next_run(at: str, tz: str, after: datetime) -> datetime:
    """The first `at` (local time in `tz`) strictly after `after` (aware), in UTC."""
    zone = ZoneInfo(tz)
    day = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(4):
        candidate = _occurrence(day + timedelta(days=offset), at, zone)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a daily time recurs within four days")


def previous_run(at: str, tz: str, now: datetime) -> datetime:
    """The latest `at` at or before `now`, in UTC."""
    zone = ZoneInfo(tz)
    day = now.astimezone(zone).date() + timedelta(days=1)
    for offset in range(4):
        candidate = _occurrence(day - timedelta(days=offset), at, zone)
        if candidate <= now:
            return candidate
    raise AssertionError("unreachable")


def due(at: str, tz: str, now: datetime, last_sent_for: str | None) -> datetime | None:
    """The occurrence to send now, if any: the latest one, not yet sent, at most CATCH_UP ago."""
    occurrence = previous_run(at, tz, now)
    if occurrence.isoformat() == last_sent_for or now - occurrence > CATCH_UP:
        return None
    return occurrence


def claim(folder: Path, key: str) -> bool:
    """True for the one caller that creates `folder/key` first: O_EXCL on a folder the HA peers share."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.uname().nodename} {os.getpid()}\n")
    return True


def claim_s3(client, bucket: str, key: str) -> bool:
    """The same claim on S3, with a conditional put (If-None-Match: *)."""
    from botocore.exceptions import ClientError
    try:
        client.put_object(Bucket=bucket, Key=key, Body=f"{os.uname().nodename} {os.getpid()}\n".encode(),
                          IfNoneMatch="*")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True
