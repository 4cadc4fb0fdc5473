"""The kinds of bot botwatch knows, by the name a bot's `preset` gives (none: `csv`, the generic bot).

A new kind is a module beside these (a `BotKind` subclass and its one object) and a line in KINDS; the
remediator's restore/kinds.py says, for a kind with a database, how its lost fills are found again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from botwatch.core.presets.csv import CSV
from botwatch.core.presets.freqtrade import FREQTRADE
from botwatch.core.presets.hummingbot import HUMMINGBOT
from botwatch.core.presets.kind import Bot, BotKind

__all__ = ["BotKind", "GENERIC", "KINDS", "apply", "kind_of", "names", "open_database", "open_store", "register"]

KINDS: dict[str, BotKind] = {kind.name: kind for kind in (CSV, FREQTRADE, HUMMINGBOT)}
GENERIC = CSV.name     # a bot without a preset


def register(kind: BotKind) -> None:
    """Add a kind from outside the package (a plug-in, a test); its name becomes a valid `preset`."""
    KINDS[kind.name] = kind


def kind_of(name: str | None) -> BotKind:
    """The kind a preset (or a backup's `kind`) names; the generic one for none."""
    return KINDS[name or GENERIC]


def names() -> list[str]:
    return sorted(KINDS)


def apply(raw: dict) -> dict:
    """The bot's raw mapping with its preset's defaults filled in (unchanged without a known preset)."""
    preset = raw.get("preset")
    return KINDS[preset].fill(raw) if isinstance(preset, str) and preset in KINDS else raw


def open_store(bot: Bot, clock: Callable[[], float] = time.time):
    """The bot's trade store, as its kind keeps it."""
    return bot.kind.open_store(bot, clock)


def open_database(kind: str, path: Path, starting_balance: float = 0.0, name: str = "",
                  clock: Callable[[], float] = time.time):
    """The store of a database file of the named kind (a backup's copy, a restore's)."""
    return kind_of(kind).open_database(path, starting_balance, name, clock)
