"""Parsing the fields of a trade row: timestamps in each supported spelling, numbers, sides, CSV lines."""

from __future__ import annotations

import csv
import math
from datetime import datetime, timezone
from typing import Callable


def _parse_iso(text: str) -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _parse_epoch(scale: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text) / scale
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    return parse


TIMESTAMP_PARSERS = {"iso": _parse_iso, "epoch_s": _parse_epoch(1.0), "epoch_ms": _parse_epoch(1000.0)}


SIDES = frozenset(("buy", "sell"))


def number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def split_fields(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line]))
