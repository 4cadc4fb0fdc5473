"""The fill mirror: botwatch's own append-only copy of a preset bot's closed trades and their orders.

A Freqtrade bot's REST API reads the very database that gets corrupted, so nothing can be replayed from
it after the fact: the mirror copies each closed trade (as `/api/v1/trades` gives it, orders included)
into `DATA_DIR/mirror/BOT.jsonl` while the bot is healthy, fsynced, one JSON object a line. Open trades
change in place, so their newest list from `/api/v1/status` is kept beside it (`BOT.open.json`). A restore
puts back the closed trades the mirror has and the restored backup lacks, and the open ones it lacks.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from botwatch.core.config import Bot
from botwatch.core.files import write_atomic
from botwatch.core.freqtrade_api import FreqtradeAPI

log = logging.getLogger(__name__)

PAGE = 500
OVERLAP = 50         # trades read again at each sync: a trade closed out of id order is still caught


def mirror_path(data_dir: Path, bot: Bot) -> Path:
    return Path(data_dir) / "mirror" / f"{bot.name}.jsonl"


def open_trades_path(mirror: Path) -> Path:
    """Beside the mirror: the bot's open trades as its API last listed them (rewritten at each sync)."""
    return mirror.with_suffix(".open.json")


def read_open_trades(mirror: Path) -> list[dict]:
    try:
        trades = json.loads(open_trades_path(mirror).read_text())
    except (OSError, ValueError):
        return []
    return [t for t in trades if isinstance(t, dict) and isinstance(t.get("trade_id"), int)] \
        if isinstance(trades, list) else []


def read_jsonl(path: Path, keep) -> list[dict]:
    """The objects of an append-only JSONL file that `keep` accepts, in order; a torn last line is left out."""
    found = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                try:
                    item = json.loads(line)
                except ValueError:
                    log.warning("%s: a line that is not JSON skipped", path)
                    continue
                if isinstance(item, dict) and keep(item):
                    found.append(item)
    except FileNotFoundError:
        pass
    return found


def append_jsonl(path: Path, items: list[dict]) -> None:
    """Append one JSON object a line and fsync: a mirror never loses what it said it copied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items))
        f.flush()
        os.fsync(f.fileno())


def read_mirror(path: Path) -> list[dict]:
    """The mirrored closed trades, in the order they were mirrored."""
    return read_jsonl(path, lambda trade: isinstance(trade.get("trade_id"), int))


class FillMirror:
    def __init__(self, bot: Bot, path: Path, api: FreqtradeAPI):
        self.bot = bot
        self.path = Path(path)
        self.api = api
        self._ids: set[int] | None = None
        self._total = 0

    def sync(self) -> int:
        """Append the closed trades not mirrored yet; how many. The API down is no error: next time."""
        if self._ids is None:
            self._ids = {trade["trade_id"] for trade in read_mirror(self.path)}
        offset = max(0, self._total - OVERLAP) if self._ids else 0
        new = []
        while True:
            page = self.api.closed_trades(offset, PAGE)
            if page is None:
                break
            trades, self._total = page
            for trade in trades:
                trade_id = trade.get("trade_id")
                if isinstance(trade_id, int) and trade_id not in self._ids and not trade.get("is_open"):
                    self._ids.add(trade_id)
                    new.append(trade)
            if len(trades) < PAGE:
                break
            offset += len(trades)
        if new:
            append_jsonl(self.path, new)
            log.info("%s: %d closed trade(s) mirrored", self.bot.name, len(new))
        status = self.api.get("status")
        if isinstance(status, list):       # open trades change in place: the newest list replaces the last
            write_atomic(open_trades_path(self.path), json.dumps(status, separators=(",", ":")))
        return len(new)
