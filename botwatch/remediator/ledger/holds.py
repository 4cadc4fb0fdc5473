"""Holds: the pauses in the ledger that every playbook reads first.

A pause is an operator's (`botwatch pause`), a maintenance window's occurrence, or a deliberate stop
botwatch saw (a container stopped through the Docker API, a Freqtrade stopped through its own API). Each
covers one bot, one host's bots, or all; it ends at `until`, when it is resumed, or when its Alertmanager
silence is deleted. An ended pause stays in the table: the report and the status page tell of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from botwatch.remediator.ledger.ledger import Ledger

REASONS = ("pause", "maintenance", "operator_stop")    # tradingbot_paused{reason}
SCOPES = ("bot", "host", "all")


@dataclass(frozen=True)
class Pause:
    id: int
    scope: str
    target: str
    reason: str
    comment: str
    who: str
    since: float
    until: float | None
    silence_id: str | None = None
    occurrence: str | None = None
    ended_at: float | None = None
    ended_by: str | None = None

    def covers(self, bot: str, host: str) -> bool:
        return self.scope == "all" or (self.scope == "bot" and bot in self.bots) or (
            self.scope == "host" and self.target == host)

    @property
    def bots(self) -> list[str]:
        """The bots a bot-scoped pause names (a maintenance window may name several)."""
        return self.target.split(",") if self.scope == "bot" else []

    def active(self, now: float) -> bool:
        return self.ended_at is None and self.since <= now and (self.until is None or now < self.until)

    @property
    def matcher(self) -> dict | None:
        """Its Alertmanager silence's matcher (API v2); None for all bots (a matcher on the job instead)."""
        if self.scope == "all":
            return None
        if self.scope == "bot" and len(self.bots) > 1:
            return {"name": "bot", "value": "|".join(self.bots), "isRegex": True, "isEqual": True}
        return {"name": self.scope, "value": self.target, "isRegex": False, "isEqual": True}

    def as_dict(self) -> dict:
        return asdict(self)


class Holds:
    """The pauses table of a ledger."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def add(self, scope: str, target: str, reason: str, comment: str, who: str, since: float,
            until: float | None, occurrence: str | None = None) -> Pause | None:
        """A new pause; None when `occurrence` has one already (another remediator made it)."""
        if scope not in SCOPES or reason not in REASONS:
            raise ValueError(f"pause scope {scope!r} / reason {reason!r}")
        rows, _ = self.ledger._write(
            "INSERT INTO pauses (scope, target, reason, comment, who, since, until, occurrence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *",
            (scope, target, reason, comment, who, since, until, occurrence))
        return Pause(**rows[0]) if rows else None

    def set_silence(self, pause_id: int, silence_id: str) -> None:
        self.ledger._write("UPDATE pauses SET silence_id = ? WHERE id = ?", (silence_id, pause_id))

    def end(self, pause_id: int, now: float, by: str) -> bool:
        """End a pause now; False when it had ended already."""
        _, count = self.ledger._write("UPDATE pauses SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at IS NULL",
                                      (now, by, pause_id))
        return count == 1

    def open(self) -> list[Pause]:
        """Pauses not ended by hand (some may have run out: `until` passed)."""
        return [Pause(**row) for row in self.ledger._read("SELECT * FROM pauses WHERE ended_at IS NULL ORDER BY id")]

    def active(self, now: float) -> list[Pause]:
        return [pause for pause in self.open() if pause.active(now)]

    def holding(self, bot: str, host: str, now: float) -> Pause | None:
        """The pause that holds a bot now (the first made), or None."""
        return next((pause for pause in self.active(now) if pause.covers(bot, host)), None)

    def since(self, start: float) -> list[Pause]:
        """Every pause that overlaps [start, now], ended or not (the report's paused time)."""
        return [Pause(**row) for row in self.ledger._read(
            "SELECT * FROM pauses WHERE COALESCE(ended_at, until, 1e18) >= ? ORDER BY since", (start,))]

    def find(self, pause_id: int) -> Pause | None:
        row = self.ledger._one("SELECT * FROM pauses WHERE id = ?", (pause_id,))
        return Pause(**row) if row else None
