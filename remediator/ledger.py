"""The remediator's durable memory: a SQLite file in the data dir.

It holds every delivery, every incident (one alert from firing to resolved, each copy of it by its
fingerprint + startsAt: the unit of idempotency),
every action a playbook took or will take, and each bot's restart bookkeeping (attempts, backoff,
circuit). A remediator killed in the middle of a playbook finds the action still `running` at
start-up and runs it again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    alertname TEXT, bot TEXT, status TEXT, fingerprint TEXT, starts_at TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS incidents (
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    bot TEXT NOT NULL,
    opened_at REAL NOT NULL,
    resolved_at REAL,
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (fingerprint, alertname, bot) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    bot TEXT NOT NULL,
    playbook TEXT NOT NULL,
    alertname TEXT,
    fingerprint TEXT,
    starts_at TEXT,
    state TEXT NOT NULL,            -- scheduled | running | done
    outcome TEXT,                   -- success | failed | skipped | deferred | dry_run | escalated | gave_up | cancelled
    run_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    detail TEXT,
    log_excerpt TEXT
);
CREATE INDEX IF NOT EXISTS actions_due ON actions (state, run_at);
CREATE INDEX IF NOT EXISTS actions_bot ON actions (bot, finished_at);
CREATE TABLE IF NOT EXISTS bots (
    bot TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL DEFAULT 0,      -- restarts since the bot was last healthy for healthy_reset_after
    last_restart_at REAL,
    healthy_since REAL,
    circuit_open INTEGER NOT NULL DEFAULT 0,
    memory_raised INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Action:
    id: int
    bot: str
    playbook: str
    alertname: str | None
    fingerprint: str | None
    starts_at: str | None
    state: str
    outcome: str | None
    run_at: float
    started_at: float | None
    finished_at: float | None
    detail: str | None
    log_excerpt: str | None


@dataclass(frozen=True)
class BotState:
    bot: str
    attempts: int = 0
    last_restart_at: float | None = None
    healthy_since: float | None = None
    circuit_open: bool = False
    memory_raised: bool = False


class Ledger:
    """Thread-safe access to the ledger file; every write is committed before the call returns."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self):
        """Everything written inside commits together, once (one fsync), or not at all."""
        with self._lock:
            if self._db.in_transaction:          # nested: the outer one commits
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, sql: str, args=()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _read(self, sql: str, args=()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- deliveries and incidents ----------------------------------------------------------------------

    def record_delivery(self, now: float, alertname: str, bot: str, status: str, fingerprint: str,
                        starts_at: str, note: str) -> None:
        self._write("INSERT INTO deliveries (received_at, alertname, bot, status, fingerprint, starts_at, note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (now, alertname, bot, status, fingerprint, starts_at, note))

    def open_incident(self, fingerprint: str, starts_at: str, alertname: str, bot: str, now: float) -> bool:
        """True for the one delivery that acts: the first of an incident. An incident is one alert
        (bot, alertname, fingerprint) from firing to resolved, whatever `startsAt` each copy carries: an
        Alertmanager HA pair fed by two Prometheus servers can send the same alert with two startsAt, and
        resends it when a peer thinks the other failed. Every copy is remembered, so that a stale resend of
        a resolved incident does not open a new one.

        The resolve can also never arrive: Alertmanager tells a group's current state, so an alert that
        resolved and fired again within one group_interval reaches us only as a firing copy with a later
        startsAt. A copy that started after every action of the open incident had finished is that: a new
        incident (the one before is closed, and its copies stay with it: see `_superseded`)."""
        key = (fingerprint, alertname, bot)
        with self.transaction():
            seen = self._db.execute("SELECT 1 FROM incidents WHERE fingerprint = ? AND starts_at = ?",
                                    (fingerprint, starts_at)).fetchone()
            if seen:
                return False
            if self._superseded(key, starts_at):           # a late copy of an incident already closed
                self._db.execute("INSERT INTO incidents (fingerprint, starts_at, alertname, bot, opened_at, resolved_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, bot, now, now))
                return False
            copies = [row[0] for row in self._db.execute(
                "SELECT starts_at FROM incidents WHERE fingerprint = ? AND alertname = ? AND bot = ? "
                "AND resolved_at IS NULL", key)]
            acts = not copies
            if copies:
                finished = self._settled(key, copies)
                if finished is not None and _epoch(starts_at) > finished:
                    self._db.execute("UPDATE incidents SET resolved_at = ? WHERE fingerprint = ? AND alertname = ? "
                                     "AND bot = ? AND resolved_at IS NULL", (now, *key))
                    self.put(_boundary_key(key), finished)          # in this transaction (the lock is reentrant)
                    acts = True
            self._db.execute("INSERT INTO incidents (fingerprint, starts_at, alertname, bot, opened_at) "
                             "VALUES (?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, bot, now))
            return acts

    def _settled(self, key: tuple[str, str, str], copies: list[str]) -> float | None:
        """When the last action of an incident (its copies' startsAt) finished; None while one is pending
        or running, or when it has none (nothing tells its end then)."""
        marks = ",".join("?" * len(copies))
        row = self._db.execute(
            f"SELECT COUNT(*), SUM(state != 'done'), MAX(finished_at) FROM actions WHERE fingerprint = ? "
            f"AND alertname = ? AND bot = ? AND starts_at IN ({marks})", (key[0], key[1], key[2], *copies)).fetchone()
        count, pending, finished = row
        return finished if count and not pending else None

    def _superseded(self, key: tuple[str, str, str], starts_at: str) -> bool:
        """Whether a copy belongs to an incident closed because a later one opened (it started before
        that one's actions had finished)."""
        boundary = self.get(_boundary_key(key))
        return boundary is not None and _epoch(starts_at) <= boundary

    def resolve_incident(self, fingerprint: str, starts_at: str, alertname: str, bot: str, now: float) -> bool:
        """Close the incident, every copy of it; the resolving copy is remembered too (a late firing resend
        of it is then a duplicate, not a new incident). False when the copy belongs to an incident a later
        one already superseded: the open one stays open."""
        key = (fingerprint, alertname, bot)
        with self.transaction():
            superseded = self._superseded(key, starts_at)
            if not superseded:
                self._db.execute("UPDATE incidents SET resolved_at = ? WHERE fingerprint = ? AND alertname = ? "
                                 "AND bot = ? AND resolved_at IS NULL", (now, *key))
            self._db.execute("INSERT OR IGNORE INTO incidents (fingerprint, starts_at, alertname, bot, opened_at, "
                             "resolved_at) VALUES (?, ?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, bot, now, now))
            return not superseded

    def incident_open(self, fingerprint: str | None, starts_at: str | None) -> bool:
        """Whether the incident this copy belongs to is still open (any copy of it unresolved)."""
        rows = self._read("SELECT b.resolved_at FROM incidents a JOIN incidents b ON b.fingerprint = a.fingerprint "
                          "AND b.alertname = a.alertname AND b.bot = a.bot WHERE a.fingerprint = ? AND a.starts_at = ? "
                          "AND b.resolved_at IS NULL", (fingerprint, starts_at))
        return bool(rows)

    # -- actions -----------------------------------------------------------------------------------------

    def schedule(self, bot: str, playbook: str, run_at: float, alertname: str | None = None,
                 fingerprint: str | None = None, starts_at: str | None = None, detail: str | None = None) -> int:
        cursor = self._write(
            "INSERT INTO actions (bot, playbook, alertname, fingerprint, starts_at, state, run_at, detail) "
            "VALUES (?, ?, ?, ?, ?, 'scheduled', ?, ?)",
            (bot, playbook, alertname, fingerprint, starts_at, run_at, detail))
        return cursor.lastrowid

    def due(self, now: float, busy: set[str]) -> list[Action]:
        """Scheduled actions whose time has come, oldest first, at most one per bot not already busy."""
        rows = self._read("SELECT * FROM actions WHERE state = 'scheduled' AND run_at <= ? ORDER BY run_at, id",
                          (now,))
        picked, bots = [], set(busy)
        for row in rows:
            if row["bot"] not in bots:
                bots.add(row["bot"])
                picked.append(Action(**dict(row)))
        return picked

    def next_run_at(self) -> float | None:
        rows = self._read("SELECT MIN(run_at) AS at FROM actions WHERE state = 'scheduled'")
        return rows[0]["at"] if rows else None

    def start(self, action_id: int, now: float) -> None:
        self._write("UPDATE actions SET state = 'running', started_at = ? WHERE id = ?", (now, action_id))

    def finish(self, action_id: int, now: float, outcome: str, detail: str, log_excerpt: str | None = None) -> None:
        self._write("UPDATE actions SET state = 'done', finished_at = ?, outcome = ?, detail = ?, log_excerpt = ? "
                    "WHERE id = ?", (now, outcome, detail, log_excerpt, action_id))

    def defer(self, action_id: int, run_at: float, detail: str) -> None:
        self._write("UPDATE actions SET state = 'scheduled', run_at = ?, detail = ? WHERE id = ?",
                    (run_at, detail, action_id))

    def cancel_scheduled(self, bot: str, playbook: str, now: float, detail: str, alertname: str | None = None) -> int:
        """Cancel the bot's pending runs of the playbook (only those one alert asked for, given `alertname`)."""
        only = " AND alertname = ?" if alertname else ""
        cursor = self._write("UPDATE actions SET state = 'done', outcome = 'cancelled', finished_at = ?, detail = ? "
                             f"WHERE bot = ? AND playbook = ? AND state = 'scheduled'{only}",
                             (now, detail, bot, playbook, *([alertname] if alertname else [])))
        return cursor.rowcount

    def requeue_interrupted(self, now: float) -> int:
        """Actions left `running` by a remediator that died: run them again."""
        cursor = self._write("UPDATE actions SET state = 'scheduled', run_at = ?, "
                             "detail = 'interrupted by a remediator restart; running again' "
                             "WHERE state = 'running'", (now,))
        return cursor.rowcount

    def action(self, action_id: int) -> Action:
        return Action(**dict(self._read("SELECT * FROM actions WHERE id = ?", (action_id,))[0]))

    def actions(self, since: float | None = None, bot: str | None = None, limit: int = 1000) -> list[Action]:
        sql, args = "SELECT * FROM actions WHERE 1=1", []
        if since is not None:
            sql += " AND COALESCE(finished_at, run_at) >= ?"
            args.append(since)
        if bot is not None:
            sql += " AND bot = ?"
            args.append(bot)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [Action(**dict(row)) for row in self._read(sql, args)]

    # -- per-bot restart bookkeeping -----------------------------------------------------------------------

    def bot_state(self, bot: str) -> BotState:
        rows = self._read("SELECT * FROM bots WHERE bot = ?", (bot,))
        if not rows:
            return BotState(bot)
        row = dict(rows[0])
        return BotState(row["bot"], row["attempts"], row["last_restart_at"], row["healthy_since"],
                        bool(row["circuit_open"]), bool(row["memory_raised"]))

    def update_bot(self, bot: str, **fields) -> None:
        columns = ", ".join(f"{key} = ?" for key in fields)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO bots (bot) VALUES (?)", (bot,))
            self._db.execute(f"UPDATE bots SET {columns} WHERE bot = ?", (*fields.values(), bot))

    def bot_states(self) -> dict[str, BotState]:
        """Every bot's bookkeeping in one query (read at each scrape of the remediator)."""
        return {row["bot"]: BotState(row["bot"], row["attempts"], row["last_restart_at"], row["healthy_since"],
                                     bool(row["circuit_open"]), bool(row["memory_raised"]))
                for row in self._read("SELECT * FROM bots")}

    # -- small values (last report sent, ...) ----------------------------------------------------------------

    def get(self, key: str, default=None):
        rows = self._read("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def put(self, key: str, value) -> None:
        self._write("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)))


def _boundary_key(key: tuple[str, str, str]) -> str:
    return "incident-boundary:" + json.dumps(list(key))


def _epoch(starts_at: str) -> float:
    """An alert's startsAt (RFC 3339, checked by the payload parser) in seconds."""
    return datetime.fromisoformat(starts_at).timestamp()
