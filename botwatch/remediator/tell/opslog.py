"""The human-readable operations log: `memory/bot-operations.md` in the data dir, appended per action."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

HEADER = "# Bot operations\n\nEvery action botwatch's remediator took, newest last.\n"


class OperationsLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, when: float, bot: str, alert: str | None, action: str, outcome: str, duration: float,
               detail: str, log_excerpt: str | None = None) -> None:
        stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines = [f"\n## {stamp} · {bot} · {alert or '-'} → {action}: {outcome} ({duration:.1f}s)\n",
                 f"{_one_line(detail)}\n"]
        if log_excerpt:
            fence = "~~~~" if "```" in log_excerpt else "```"
            lines.append(f"\n{fence}text\n{log_excerpt.rstrip()}\n{fence}\n")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            with open(self.path, "a", encoding="utf-8") as f:
                if new:
                    f.write(HEADER)
                f.write("".join(lines))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000]
