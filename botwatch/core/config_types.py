"""The value types of the config: durations, sizes, slugs, URLs, regexes, argv lists, chat ids, times, and
the trade file's format (what the stores read without the whole config).

Each validator raises ValueError with the words a user needs to fix the value; config_problems.py shows
them as they are.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from botwatch.core.units import parse_duration, parse_size

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def _duration(value):
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def _positive_duration(value):
    seconds = _duration(value)
    if seconds == 0:
        raise ValueError("must be greater than zero")
    return seconds


def _slug(value: str) -> str:
    if not SLUG.fullmatch(value):
        raise ValueError(f"{value!r} is not a slug: use a-z, 0-9 and '-', at most 64 characters "
                         "(it becomes the `bot` label)")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"{value!r} is not a valid regular expression: {err}") from None
    return value


def _argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must name a program: a non-empty list like [\"python\", \"bot.py\"]")
    return value


def _argv_with_pid(value: list[str]) -> list[str]:
    for arg in _argv(value):
        for field in re.findall(r"\{([^{}]*)\}", arg):
            if field != "pid":
                raise ValueError(f"{{{field}}} in {arg!r}: {{pid}} is the only substitution")
    return value


def _chat_ids(value):
    values = value if isinstance(value, list) else [value]
    for chat in values:
        if isinstance(chat, bool) or not isinstance(chat, (int, str)) or chat == "":
            raise ValueError(f"{chat!r} is not a chat id: use a number like 123456789, an @channel name, or a list")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone like UTC or Europe/Berlin") from None
    return value


def _clock_time(value: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 08:00")
    return value


def _drawdown(value):
    """`10%` (of the equity's peak) or `250` (an amount in the quote currency) -> ("percent"|"quote", number)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] in ("percent", "quote"):
        return tuple(value)
    if isinstance(value, bool):
        raise ValueError("expected a percent of the peak like 10% or an amount like 250")
    if isinstance(value, (int, float)):
        kind, number = "quote", float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            kind, number = "percent", float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"{value!r}: expected a percent of the peak like 10%") from None
        if not 0 < number < 100:
            raise ValueError(f"{value!r}: a percent between 0 and 100")
    else:
        raise ValueError(f"{value!r}: expected a percent of the peak like 10% or an amount like 250")
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{value!r}: must be more than 0")
    return kind, number


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Slug = Annotated[str, AfterValidator(_slug)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Regex = Annotated[str, AfterValidator(_regex)]
Argv = Annotated[list[str], AfterValidator(_argv)]
ArgvWithPid = Annotated[list[str], AfterValidator(_argv_with_pid)]
Size = Annotated[int, BeforeValidator(parse_size)]
DrawdownLimit = Annotated[tuple[Literal["percent", "quote"], float], BeforeValidator(_drawdown)]
NonEmpty = Annotated[str, Field(min_length=1)]
ChatIds = Annotated[int | str | list[int | str] | None, BeforeValidator(_chat_ids)]
ClockTime = Annotated[str, AfterValidator(_clock_time)]
TimeZone = Annotated[str, AfterValidator(_timezone)]

ERROR_KINDS = ("auth", "rate_limit", "other")
COLUMNS = ("timestamp", "trade_id", "symbol", "side", "price", "qty", "fee")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFormat(Strict):
    """How a bot's trade file names its columns and spells its timestamps."""

    columns: dict[Literal[COLUMNS], NonEmpty] = Field(default_factory=dict)
    timestamp: Literal["iso", "epoch_s", "epoch_ms"] = "iso"
    dedup_window: int = Field(default=20_000, ge=1, le=10_000_000)   # rows a trade id must be unique among

    def header_names(self) -> dict[str, str]:
        """The header name of each of the seven fields."""
        return {column: self.columns.get(column, column) for column in COLUMNS}
