"""Each bot's equity peak: the highest equity (starting balance + realized + unrealized P&L) its checks saw
within its `drawdown_window`, published as tradingbot_equity_peak; TradingBotDrawdown compares the equity
with it. Kept across exporter restarts in the state dir (`BOT/peak.json`), so a restart (or a kill -9) does
not lower the peak to the equity of the moment and hide a drawdown under way.

The window's maximum is a monotonic queue of (time, equity): a point is dropped once a later one is at least
as high (it can never be the peak again) or once it is older than the window, so the queue stays short (for
a bot whose equity only falls, one point per check within the window).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot

log = logging.getLogger(__name__)

FORMAT = "botwatch-equity-peak/1"
SAVE_EVERY = 60.0      # seconds between saves while the peak itself did not move (a new peak is saved at once)


class Peak:
    def __init__(self, window: float):
        self.window = window
        self.points: deque[tuple[float, float]] = deque()

    def add(self, at: float, equity: float) -> bool:
        """One check's equity; True when the peak changed."""
        before = self.value
        while self.points and self.points[-1][1] <= equity:
            self.points.pop()
        self.points.append((at, equity))
        while self.points[0][0] < at - self.window:
            self.points.popleft()
        return self.value != before

    @property
    def value(self) -> float | None:
        return self.points[0][1] if self.points else None


class Peaks:
    """Every bot's Peak; saved under `folder` (None: kept in memory only)."""

    def __init__(self, folder: Path | None, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.folder = Path(folder) if folder else None
        self.clock, self.monotonic = clock, monotonic
        self._peaks: dict[str, Peak] = {}
        self._saved: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _identity(bot: Bot) -> dict:
        """What the peak's figures depend on: a new starting balance or data file starts a new peak."""
        return {"bot": bot.name, "data_file": str(Path(bot.data_file).resolve()), "starting_balance": bot.starting_balance}

    def update(self, bot: Bot, equity: float) -> float | None:
        """The bot's peak after this check's equity (None for a figure that is not a number)."""
        if not math.isfinite(equity):
            return self.value(bot.name)
        with self._lock:
            peak = self._peaks.get(bot.name)
            if peak is None:
                peak = self._peaks[bot.name] = self._load(bot)
            peak.window = bot.drawdown_window
            moved = peak.add(self.clock(), equity)
            value = peak.value
            points = list(peak.points)
        if self.folder and (moved or self.monotonic() - self._saved.get(bot.name, float("-inf")) >= SAVE_EVERY):
            self._save(bot, points)
        return value

    def value(self, name: str) -> float | None:
        with self._lock:
            peak = self._peaks.get(name)
            return peak.value if peak else None

    def _path(self, bot: Bot) -> Path:
        return self.folder / bot.name / "peak.json"

    def _save(self, bot: Bot, points: list) -> None:
        path = self._path(bot)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"format": FORMAT, **self._identity(bot), "points": points}, allow_nan=False)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".peak.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(temp, path)
            self._saved[bot.name] = self.monotonic()
        except (OSError, ValueError) as err:     # a full disk costs a restart the old peak, never a check
            log.warning("%s: can't save its equity peak: %s", bot.name, err)

    def _load(self, bot: Bot) -> Peak:
        peak = Peak(bot.drawdown_window)
        if not self.folder:
            return peak
        try:
            doc = json.loads(self._path(bot).read_text())
            if doc.get("format") != FORMAT or {k: doc.get(k) for k in self._identity(bot)} != self._identity(bot):
                raise ValueError("another bot's, another file's or another starting balance's")
            points = [(float(t), float(e)) for t, e in doc["points"]]
            if not all(math.isfinite(t) and math.isfinite(e) for t, e in points):
                raise ValueError("not numbers")
        except FileNotFoundError:
            return peak
        except (OSError, ValueError, TypeError, KeyError) as err:
            log.warning("%s: ignoring its saved equity peak (%s); the peak starts again", bot.name, err)
            return peak
        now = self.clock()
        for at, equity in points:          # through add(): the window and the order are checked again
            if at <= now:
                peak.add(at, equity)
        return peak
