"""What the remediator does for each kind of bot with a database (botwatch.core.presets names the kinds): the
mirror that keeps a copy of its fills, and how a restore of its database finds the fills its backup lacks.
A kind left out has no mirror, and its restore is its backup alone; a bot without a database (csv) is
restored from its journal (restore/csvfile.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot
from botwatch.remediator.restore.freqtrade import freqtrade_fill_in
from botwatch.remediator.restore.hummingbot import hummingbot_fill_in
from botwatch.remediator.restore.mirror import FillMirror, mirror_path
from botwatch.remediator.restore.mirror_hummingbot import LogFillMirror
from botwatch.remediator.restore.sqlite import FillIn


@dataclass(frozen=True)
class Recovery:
    mirror: Callable[[Bot, Path], object | None]     # (bot, mirror file) -> its fill mirror (has sync()), or None
    fill_in: Callable[[Bot, Path | None, Callable[[], float], Callable[[float], None]], FillIn]


def _api_mirror(bot: Bot, path: Path) -> FillMirror | None:
    api = bot.kind.api(bot)
    return FillMirror(bot, path, api) if api is not None else None


def _log_mirror(bot: Bot, path: Path) -> LogFillMirror | None:
    return LogFillMirror(bot, path) if bot.log_file is not None else None


def _nothing_to_add(path, report, manifest) -> None:
    return None


RECOVERY: dict[str, Recovery] = {
    "freqtrade": Recovery(_api_mirror, lambda bot, mirror, clock, sleep: freqtrade_fill_in(mirror)),
    "hummingbot": Recovery(_log_mirror, hummingbot_fill_in),
}
BACKUP_ALONE = Recovery(lambda bot, path: None, lambda bot, mirror, clock, sleep: _nothing_to_add)


def recovery_for(bot: Bot) -> Recovery:
    return RECOVERY.get(bot.store, BACKUP_ALONE)


def mirrored(bot: Bot) -> bool:
    """Does botwatch keep a mirror of this bot's fills (a restore then replays from it)?"""
    return bot.store in RECOVERY


def fill_mirror(bot: Bot, data_dir: Path):
    """The bot's fill mirror under `data_dir`, or None for a kind that has none (or lacks what it needs)."""
    return recovery_for(bot).mirror(bot, mirror_path(data_dir, bot))


def fill_in(bot: Bot, mirror: Path | None, clock: Callable[[], float] = time.time,
            sleep: Callable[[float], None] = time.sleep) -> FillIn:
    return recovery_for(bot).fill_in(bot, mirror, clock, sleep)
