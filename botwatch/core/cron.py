"""Cron schedules ("M H DOM MON DOW", as crontab(5) reads them) for maintenance windows.

Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and names for months
(JAN…DEC) and weekdays (SUN…SAT; 0 and 7 are both Sunday). As in cron, when both day-of-month and
day-of-week are restricted a day matching either matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
NAMES = {3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
         4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}


class CronError(ValueError):
    """A cron expression that can't be read; the message names the field."""


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]     # 0 = Sunday
    any_day: bool                # day of month is *
    any_weekday: bool            # day of week is *

    def matches(self, at: datetime) -> bool:
        """Whether the minute `at` (in the schedule's time zone) is one the schedule fires at."""
        if at.minute not in self.minutes or at.hour not in self.hours or at.month not in self.months:
            return False
        day = at.day in self.days
        weekday = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def last_before(self, at: datetime, within: timedelta) -> datetime | None:
        """The latest minute <= `at` the schedule fired at, no further back than `within`; None if none."""
        minute = at.replace(second=0, microsecond=0)
        earliest = at - within
        while minute > earliest:
            if self.matches(minute):
                return minute
            minute -= timedelta(minutes=1)
        return None


def parse_cron(text: str) -> Cron:
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{text!r}: a cron schedule has 5 fields (minute hour day-of-month month day-of-week), "
                        f"not {len(parts)}")
    sets = [_field(part, index) for index, part in enumerate(parts)]
    weekdays = frozenset(7 if d == 7 else d for d in sets[4])
    weekdays = frozenset((d % 7) for d in weekdays)
    return Cron(text, *map(frozenset, sets[:4]), weekdays, parts[2] == "*", parts[4] == "*")


def _field(part: str, index: int) -> set[int]:
    name, low, high = FIELDS[index]
    values: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
        except ValueError:
            raise CronError(f"{name} {item!r}: the step after / must be a number") from None
        if step < 1:
            raise CronError(f"{name} {item!r}: the step must be at least 1")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(body, index)
            end = high if step_text else start
        if start > end:
            raise CronError(f"{name} {item!r}: the range runs backwards")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, index: int) -> int:
    name, low, high = FIELDS[index]
    names = NAMES.get(index)
    if names and text.upper() in names:
        return names.index(text.upper()) + (1 if index == 3 else 0)
    try:
        value = int(text)
    except ValueError:
        hint = f" or one of {', '.join(names)}" if names else ""
        raise CronError(f"{name} {text!r}: not a number{hint}") from None
    if not low <= value <= high:
        raise CronError(f"{name} {value}: out of range {low}-{high}")
    return value
