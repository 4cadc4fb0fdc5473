"""Maintenance windows (`maintenance:` in the config): when a bot, a host's bots or all are paused on a
schedule. Each window is a cron schedule with a duration, or one {start, end}; the remediator turns each
occurrence into a pause (botwatch.remediator.intent.maintenance)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import model_validator

from botwatch.core.config_types import NonEmpty, PositiveDuration, Slug, Strict, TimeZone
from botwatch.core.cron import CronError, parse_cron

LONGEST = 7 * 86400.0     # a window longer than a week is a pause, not maintenance


class Maintenance(Strict):
    name: NonEmpty
    bots: list[Slug] | None = None
    hosts: list[Slug] | None = None
    all: bool = False
    cron: str | None = None              # "M H DOM MON DOW" in `timezone`
    duration: PositiveDuration | None = None
    timezone: TimeZone = "UTC"
    start: datetime | None = None        # a one-off window; without a UTC offset, in `timezone`
    end: datetime | None = None

    @model_validator(mode="after")
    def _one_scope_one_schedule(self):
        scopes = [key for key in ("bots", "hosts") if getattr(self, key)] + (["all"] if self.all else [])
        if len(scopes) != 1:
            raise ValueError("give exactly one of bots: [...], hosts: [...] or all: true"
                             + (f" (not {' and '.join(scopes)})" if scopes else ""))
        if (self.cron is None) == (self.start is None):
            raise ValueError("give either cron with duration (a repeating window) or start with end (a one-off)")
        if self.cron is not None:
            try:
                parse_cron(self.cron)
            except CronError as err:
                raise ValueError(f"cron: {err}") from None
            if self.duration is None:
                raise ValueError("a cron window needs a duration (e.g. 30m)")
            if self.duration > LONGEST:
                raise ValueError("duration: a maintenance window lasts at most 7d; pause the bot for longer")
        else:
            if self.end is None or self.duration is not None:
                raise ValueError("a one-off window has start and end (and no duration)")
            if self._aware(self.end) <= self._aware(self.start):
                raise ValueError("end is not after start")
        return self

    def _aware(self, at: datetime) -> datetime:
        return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(self.timezone))

    @property
    def scope(self) -> tuple[str, list[str]]:
        """("bot", names) | ("host", names) | ("all", ["*"])."""
        if self.bots:
            return "bot", list(self.bots)
        if self.hosts:
            return "host", list(self.hosts)
        return "all", ["*"]

    def occurrence(self, now: float) -> tuple[float, float] | None:
        """The (start, end) in Unix seconds of the occurrence under way at `now`, or None."""
        if self.start is not None:
            start, end = self._aware(self.start).timestamp(), self._aware(self.end).timestamp()
            return (start, end) if start <= now < end else None
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        began = parse_cron(self.cron).last_before(local, timedelta(seconds=self.duration))
        if began is None:
            return None
        start = began.timestamp()
        return (start, start + self.duration) if now < start + self.duration else None
