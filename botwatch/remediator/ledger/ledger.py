"""The remediator's durable memory: a SQLite file in the data dir, or a PostgreSQL database that remediator
replicas share (`--ledger postgresql://…`).

It holds every delivery, every incident (one alert from firing to resolved, each copy of it by its
fingerprint + startsAt: the unit of idempotency),
every action a playbook took or will take, and each bot's restart bookkeeping (attempts, backoff,
circuit). A remediator killed in the middle of a playbook finds the action still `running` at
start-up and runs it again.
"""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar

from botwatch.remediator.ledger.dialects import PostgresConnection, SqliteConnection, is_url
from botwatch.remediator.ledger.records import BOT_FIELDS, Action, Agent, BotState
from botwatch.remediator.ledger.group import GroupCommit
from botwatch.remediator.ledger.schema import ADDED_COLUMNS, SCHEMA

T = TypeVar("T")


DELIVERIES_PER_INSERT = 500   # rows of one insert: 3,500 parameters, within SQLite's and PostgreSQL's limits
RECHECK_AFTER = 2.0     # seconds: a copy of an incident whose last look found nothing to do looks again after this


class Ledger:
    """Thread-safe access to the ledger (a SQLite file, or a PostgreSQL database given by its
    postgresql:// URL); every write is committed before the call returns."""

    def __init__(self, target: Path | str):
        self._lock = threading.RLock()
        self._conn = PostgresConnection(str(target)) if is_url(target) else SqliteConnection(Path(target))
        self.path = self._conn.path          # the SQLite file; None for PostgreSQL
        self.dialect = self._conn.dialect
        # deliveries recorded in a transaction wait for its commit and go in as one insert (ledger writes of an
        # alert storm are a statement each, and each statement hands the GIL on: see record_delivery)
        self._deliveries: list[tuple] = []
        self._marks_at: dict[str, int] = {}      # savepoint -> how many deliveries were waiting when it was set
        self._group = GroupCommit(self.transaction, self._savepoint, self._rollback_to)
        with self.transaction():
            for statement in SCHEMA.format(**self._conn.types).split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            for table, columns in ADDED_COLUMNS.items():
                have = self._conn.columns(table)
                for name, kind in columns:
                    if name not in have:
                        self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.format(**self._conn.types)}")
            # on columns a migrated file has only now
            self._conn.execute("CREATE INDEX IF NOT EXISTS actions_host ON actions (host, state, run_at)")
            self._conn.execute("CREATE INDEX IF NOT EXISTS actions_expired ON actions (outcome) WHERE outcome = 'expired'")

    @property
    def where(self) -> str:
        """Where the ledger lives, for messages (a URL without its password)."""
        if self.path is not None:
            return str(self.path)
        from urllib.parse import urlsplit
        parts = urlsplit(self._conn.url)
        return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self):
        """Everything written inside commits together, once (one fsync), or not at all; with
        PostgreSQL, no other replica's transaction runs meanwhile."""
        with self._lock:
            if self._conn.in_transaction:          # nested: the outer one commits
                yield
                return
            self._conn.begin()
            try:
                yield
                self._flush_deliveries()
            except BaseException:
                self._deliveries.clear()
                self._conn.end(commit=False)
                raise
            finally:
                self._marks_at.clear()
            self._conn.end(commit=True)

    def _savepoint(self, name: str) -> None:
        """A savepoint in the transaction (never released: the commit ends them all, one statement less a
        piece of group-committed work), with the deliveries waiting at it."""
        self._write(f"SAVEPOINT {name}")
        self._marks_at[name] = len(self._deliveries)

    def _rollback_to(self, name: str) -> None:
        self._write(f"ROLLBACK TO SAVEPOINT {name}")
        del self._deliveries[self._marks_at[name]:]

    def grouped(self, work: Callable[[], T]) -> T:
        """`work` in a transaction shared with whatever other threads ask for at the same time, committed
        once for all of them (group commit: ledger/group.py); returns when that commit is done."""
        return self._group.run(work)

    def _write(self, sql: str, args=()) -> tuple[list[dict], int]:
        with self._lock:
            return self._conn.execute(sql, args)

    def _read(self, sql: str, args=()) -> list[dict]:
        with self._lock:
            return self._conn.execute(sql, args)[0]

    def _one(self, sql: str, args=()) -> dict | None:
        rows = self._read(sql, args)
        return rows[0] if rows else None

    # -- deliveries and incidents ----------------------------------------------------------------------

    def record_delivery(self, now: float, alertname: str, bot: str, status: str, fingerprint: str,
                        starts_at: str, note: str) -> None:
        """In a transaction, the row waits for its commit and goes in with the others (nothing reads deliveries
        back in the transaction that writes them): one statement for a batch of deliveries."""
        row = (now, alertname, bot, status, fingerprint, starts_at, note)
        with self._lock:
            if self._conn.in_transaction:
                self._deliveries.append(row)
            else:
                self._insert_deliveries([row])

    def _flush_deliveries(self) -> None:
        rows, self._deliveries = self._deliveries, []
        for start in range(0, len(rows), DELIVERIES_PER_INSERT):
            self._insert_deliveries(rows[start:start + DELIVERIES_PER_INSERT])

    def _insert_deliveries(self, rows: list[tuple]) -> None:
        if rows:
            self._write("INSERT INTO deliveries (received_at, alertname, bot, status, fingerprint, starts_at, note) "
                        "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(rows)), [v for row in rows for v in row])

    def open_incident(self, fingerprint: str, starts_at: str, alertname: str, bot: str, now: float,
                      began: float | None = None) -> bool:
        """True for the one delivery that acts: the first of an incident. An incident is one alert
        (bot, alertname, fingerprint) from firing to resolved, whatever `startsAt` each copy carries: an
        Alertmanager HA pair fed by two Prometheus servers can send the same alert with two startsAt, and
        resends it when a peer thinks the other failed. Every copy is remembered, so that a stale resend of
        a resolved incident does not open a new one. Two remediator replicas on one PostgreSQL ledger
        decide here one at a time (the transaction's lock), so the copy each receives acts once in all.

        The resolve can also never arrive: Alertmanager tells a group's current state, so an alert that
        resolved and fired again within one group_interval reaches us only as a firing copy with a later
        startsAt. A copy that started after every action of the open incident had finished is that: a new
        incident (the one before is closed, and its copies stay with it: see `_superseded`). When the copy
        says when its trouble began (`began`: the exporter's down_since, a death event's time), that decides
        instead of startsAt, which a rule evaluation stamps up to a scrape and an evaluation later: the
        alert that follows a death the fast path restarted in a second is that death's copy."""
        key = (fingerprint, alertname, bot)
        start = began if began is not None else _epoch(starts_at)
        with self.transaction():
            actions = self._look(key, starts_at)
            if actions["seen"]:
                return bool(actions["seen_open"]) and _nothing_done(actions, now)
            boundary, ended = (None if value is None else json.loads(value)
                               for value in (actions["boundary"], actions["ended"]))
            # a late copy of an incident already closed: one that started before a later incident's actions
            # had finished (`_superseded`), or, with no incident open, before the last episode ended (its
            # endsAt: episodes of one alert never overlap; endsAt and startsAt are both Prometheus'
            # evaluation times, compared with each other, not with `began`)
            if (boundary is not None and start <= boundary) or (
                    ended is not None and _epoch(starts_at) < ended and not actions["open"]):
                self._write("INSERT INTO incidents (fingerprint, starts_at, alertname, bot, opened_at, resolved_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, bot, now, now))
                return False
            acts = True
            if actions["open"]:
                acts = _nothing_done(actions, now)
                finished = None if acts else _settled(actions)
                if finished is not None and start > finished:
                    self._write("UPDATE incidents SET resolved_at = ? WHERE fingerprint = ? AND alertname = ? "
                                "AND bot = ? AND resolved_at IS NULL", (now, *key))
                    self.put(_boundary_key(key), finished)          # in this transaction (the lock is reentrant)
                    acts = True
            self._write("INSERT INTO incidents (fingerprint, starts_at, alertname, bot, opened_at) "
                        "VALUES (?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, bot, now))
            return acts

    def _look(self, key: tuple[str, str, str], starts_at: str) -> dict:
        """Everything open_incident decides on, in one statement: whether this copy was seen (`seen`) and is
        unresolved (`seen_open`), the alert's boundary (`_superseded`), when its last resolved episode ended,
        and its open incident's actions. Under a storm each statement hands the GIL to
        another thread: three statements an alert became one."""
        fingerprint = key[0]
        return self._one(
            "SELECT EXISTS (SELECT 1 FROM incidents WHERE fingerprint = ? AND starts_at = ?) AS seen, "
            "EXISTS (SELECT 1 FROM incidents WHERE fingerprint = ? AND starts_at = ? AND resolved_at IS NULL) "
            "AS seen_open, (SELECT value FROM kv WHERE key = ?) AS boundary, "
            "(SELECT value FROM kv WHERE key = ?) AS ended, " + _OPEN_ACTIONS,
            (fingerprint, starts_at, fingerprint, starts_at, _boundary_key(key), _ended_key(key)) + key + key)

    def _open_copies(self, key: tuple[str, str, str]) -> list[str]:
        """The startsAt of every copy of the alert's open incident (none when no incident is open)."""
        return [row["starts_at"] for row in self._read(
            "SELECT starts_at FROM incidents WHERE fingerprint = ? AND alertname = ? AND bot = ? "
            "AND resolved_at IS NULL", key)]

    def _superseded(self, key: tuple[str, str, str], start: float) -> bool:
        """Whether a copy belongs to an incident closed because a later one opened (it started before
        that one's actions had finished)."""
        boundary = self.get(_boundary_key(key))
        return boundary is not None and start <= boundary

    def resolve_incident(self, fingerprint: str, starts_at: str, alertname: str, bot: str, now: float,
                         ends_at: str | None = None) -> bool:
        """Close the incident this resolved copy describes, every copy of it; the resolving copy is remembered
        too (a late firing resend of it is then a duplicate, not a new incident). False when the copy belongs
        to an earlier episode than the open incident — one a later incident superseded, a copy already
        resolved, or one that ended (`ends_at`) before the open incident's first copy started (the HA peer's
        late resolve of the previous episode): the open incident stays open."""
        key = (fingerprint, alertname, bot)
        with self.transaction():
            earlier = self._superseded(key, _epoch(starts_at)) or self._earlier_episode(key, fingerprint, starts_at, ends_at)
            if not earlier:
                self._write("UPDATE incidents SET resolved_at = ? WHERE fingerprint = ? AND alertname = ? "
                            "AND bot = ? AND resolved_at IS NULL", (now, *key))
                if ends_at is not None:
                    self.put(_ended_key(key), max(_epoch(ends_at), self.get(_ended_key(key), 0.0)))
            self._write("INSERT INTO incidents (fingerprint, starts_at, alertname, bot, opened_at, resolved_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (fingerprint, starts_at, alertname, bot, now, now))
            return not earlier

    def _earlier_episode(self, key: tuple[str, str, str], fingerprint: str, starts_at: str,
                         ends_at: str | None) -> bool:
        """Whether a resolved copy describes an episode before the open incident (if any)."""
        copies = self._open_copies(key)
        if not copies or starts_at in copies:
            return False
        if self._one("SELECT 1 AS seen FROM incidents WHERE fingerprint = ? AND starts_at = ? "
                     "AND resolved_at IS NOT NULL", (fingerprint, starts_at)):
            return True                  # a copy of an incident closed before this one opened
        # an episode cannot end before it began: one that did ended before the open incident's first copy
        return ends_at is not None and _epoch(ends_at) < min(_epoch(copy) for copy in copies)

    def open_incidents(self, bot: str) -> list[str]:
        """The alerts with an incident open for the bot, by name."""
        return [row["alertname"] for row in self._read(
            "SELECT DISTINCT alertname FROM incidents WHERE bot = ? AND resolved_at IS NULL ORDER BY alertname", (bot,))]

    def open_incident_list(self) -> list[dict]:
        """Every bot's open incidents, oldest first: {bot, alertname, since} (since: when its first copy opened)."""
        return self._read("SELECT bot, alertname, MIN(opened_at) AS since FROM incidents WHERE resolved_at IS NULL "
                          "GROUP BY bot, alertname ORDER BY since")

    def incident_open(self, fingerprint: str | None, starts_at: str | None) -> bool:
        """Whether the incident this copy belongs to is still open (any copy of it unresolved)."""
        rows = self._read("SELECT b.resolved_at FROM incidents a JOIN incidents b ON b.fingerprint = a.fingerprint "
                          "AND b.alertname = a.alertname AND b.bot = a.bot WHERE a.fingerprint = ? AND a.starts_at = ? "
                          "AND b.resolved_at IS NULL", (fingerprint, starts_at))
        return bool(rows)

    # -- actions: the jobs of every host ----------------------------------------------------------------

    def schedule(self, bot: str, playbook: str, run_at: float, alertname: str | None = None,
                 fingerprint: str | None = None, starts_at: str | None = None, detail: str | None = None,
                 host: str = "local", deadline: float | None = None) -> int:
        rows, _ = self._write(
            "INSERT INTO actions (bot, playbook, alertname, fingerprint, starts_at, state, run_at, detail, host, "
            "deadline) VALUES (?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?) RETURNING id",
            (bot, playbook, alertname, fingerprint, starts_at, run_at, detail, host, deadline))
        return rows[0]["id"]

    def record(self, bot: str, playbook: str, now: float, outcome: str, detail: str, host: str = "local") -> int:
        """An action done as soon as it was decided (a backup): recorded done, never a job."""
        rows, _ = self._write(
            "INSERT INTO actions (bot, playbook, state, outcome, run_at, started_at, finished_at, detail, host) "
            "VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?) RETURNING id", (bot, playbook, outcome, now, now, now, detail, host))
        return rows[0]["id"]

    def claim(self, host: str, worker: str, now: float, lease: float, busy: set[str] = frozenset(),
              limit: int = 100) -> list[Action]:
        """Hand out the host's due jobs, at most one per bot, to `worker` for `lease` seconds: scheduled
        ones whose time has come, and running ones whose lease passed (their worker died or was cut off).
        Each claim counts up the job's `attempt`, the fencing token its completion must carry. A job whose
        deadline passed is never handed out (`expire`, run by the remediator's loop, records it)."""
        with self.transaction():
            rows = self._read(
                "SELECT * FROM actions WHERE host = ? AND ((state = 'scheduled' AND run_at <= ?) OR "
                "(state = 'running' AND lease_until IS NOT NULL AND lease_until < ?)) "
                "AND (deadline IS NULL OR deadline >= ?) ORDER BY run_at, id", (host, now, now, now))
            held = {row["bot"] for row in self._read(
                "SELECT DISTINCT bot FROM actions WHERE host = ? AND state = 'running' AND "
                "(lease_until IS NULL OR lease_until >= ?)", (host, now))}
            picked, bots = [], set(busy) | held
            for row in rows:
                if row["bot"] not in bots and len(picked) < limit:
                    bots.add(row["bot"])
                    picked.append(row["id"])
            claimed = []
            for action_id in picked:
                claimed += self._write(
                    "UPDATE actions SET state = 'running', started_at = ?, attempt = attempt + 1, lease_until = ?, "
                    "worker = ? WHERE id = ? RETURNING *", (now, now + lease, worker, action_id))[0]
            return [Action(**row) for row in claimed]

    def renew(self, action_id: int, attempt: int, lease_until: float) -> bool:
        """Extend a running job's lease; False when the claim is no longer this one's (fenced)."""
        _, count = self._write("UPDATE actions SET lease_until = ? WHERE id = ? AND attempt = ? AND state = 'running'",
                               (lease_until, action_id, attempt))
        return count == 1

    def holds(self, action_id: int, attempt: int) -> bool:
        """Whether the claim `attempt` of the job is still the current one (the job running under it)."""
        return bool(self._one("SELECT 1 AS held FROM actions WHERE id = ? AND attempt = ? AND state = 'running'",
                              (action_id, attempt)))

    def expire(self, now: float) -> int:
        """Jobs whose deadline passed before they ran (a host cut off, its agent gone): done, `expired`.
        A claim whose lease also ran out is expired too: its worker is gone, and its result would be stale."""
        _, count = self._write(
            "UPDATE actions SET state = 'done', outcome = 'expired', finished_at = ?, "
            "detail = 'expired: not run before its deadline' WHERE deadline IS NOT NULL AND deadline < ? AND "
            "(state = 'scheduled' OR (state = 'running' AND lease_until < ?))", (now, now, now))
        return count

    def next_run_at(self, host: str = "local") -> float | None:
        row = self._one("SELECT MIN(run_at) AS at FROM actions WHERE state = 'scheduled' AND host = ?", (host,))
        return row["at"] if row else None

    def start(self, action_id: int, now: float, worker: str = "local") -> Action:
        """Claim one job by its id, with no lease (a run by hand, in the foreground); the claimed job."""
        rows, _ = self._write(
            "UPDATE actions SET state = 'running', started_at = ?, attempt = attempt + 1, lease_until = NULL, "
            "worker = ? WHERE id = ? RETURNING *", (now, worker, action_id))
        return Action(**rows[0])

    def finish(self, action_id: int, now: float, outcome: str, detail: str, log_excerpt: str | None = None,
               attempt: int | None = None) -> bool:
        """Record a job's end. Given the claim's `attempt`, only while that claim is the current one: a
        late completion from a worker whose lease passed (the job claimed again since) is refused."""
        fence = " AND attempt = ? AND state = 'running'" if attempt is not None else ""
        _, count = self._write("UPDATE actions SET state = 'done', finished_at = ?, outcome = ?, detail = ?, "
                               f"log_excerpt = ?, lease_until = NULL WHERE id = ?{fence}",
                               (now, outcome, detail, log_excerpt, action_id, *([attempt] if attempt is not None else [])))
        return count == 1

    def defer(self, action_id: int, run_at: float, detail: str, attempt: int | None = None,
              ttl: float | None = None) -> bool:
        """Run the job again at `run_at` (fenced like `finish`); a job with a deadline gets `ttl` past then."""
        fence = " AND attempt = ? AND state = 'running'" if attempt is not None else ""
        _, count = self._write(
            "UPDATE actions SET state = 'scheduled', run_at = ?, detail = ?, lease_until = NULL, "
            f"deadline = CASE WHEN deadline IS NULL THEN NULL ELSE ? END WHERE id = ?{fence}",
            (run_at, detail, run_at + (ttl or 0), action_id, *([attempt] if attempt is not None else [])))
        return count == 1

    def cancel_scheduled(self, bot: str, playbook: str, now: float, detail: str, alertname: str | None = None) -> int:
        """Cancel the bot's pending runs of the playbook (only those one alert asked for, given `alertname`)."""
        only = " AND alertname = ?" if alertname else ""
        _, count = self._write("UPDATE actions SET state = 'done', outcome = 'cancelled', finished_at = ?, detail = ? "
                               f"WHERE bot = ? AND playbook = ? AND state = 'scheduled'{only}",
                               (now, detail, bot, playbook, *([alertname] if alertname else [])))
        return count

    def acting_on(self, bot: str, playbooks: tuple[str, ...]) -> bool:
        """Whether one of these playbooks runs for the bot now (on any host)."""
        marks = ",".join("?" * len(playbooks))
        return self._one(f"SELECT 1 AS running FROM actions WHERE bot = ? AND state = 'running' "
                         f"AND playbook IN ({marks}) LIMIT 1", (bot, *playbooks)) is not None

    def cancel_queued(self, bot: str, now: float, detail: str) -> int:
        """Cancel every job of the bot not started yet (it was paused: nothing queued runs later)."""
        _, count = self._write("UPDATE actions SET state = 'done', outcome = 'cancelled', finished_at = ?, detail = ? "
                               "WHERE bot = ? AND state = 'scheduled'", (now, detail, bot))
        return count

    def requeue_interrupted(self, now: float, host: str = "local") -> int:
        """Jobs left `running` here by a remediator that died: run them again. Only for a ledger one
        remediator owns (SQLite); replicas sharing one find a dead peer's jobs by their lease instead."""
        _, count = self._write("UPDATE actions SET state = 'scheduled', run_at = ?, lease_until = NULL, "
                               "detail = 'interrupted by a remediator restart; running again' "
                               "WHERE state = 'running' AND host = ?", (now, host))
        return count

    def find(self, action_id: int) -> Action | None:
        row = self._one("SELECT * FROM actions WHERE id = ?", (action_id,))
        return Action(**row) if row else None

    def action(self, action_id: int) -> Action:
        return Action(**self._read("SELECT * FROM actions WHERE id = ?", (action_id,))[0])

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
        return [Action(**row) for row in self._read(sql, args)]

    def job_counts(self) -> dict[str, int]:
        """Jobs by state: queued and running now; expired, ever (botwatch_jobs). Read at each scrape: both
        counts come from indexes (actions_due, actions_expired), never a scan of the whole history."""
        counts = {row["state"]: row["n"] for row in self._read(
            "SELECT state, COUNT(*) AS n FROM actions WHERE state IN ('scheduled', 'running') GROUP BY state")}
        expired = self._one("SELECT COUNT(*) AS n FROM actions WHERE outcome = 'expired'")["n"]
        return {"queued": counts.get("scheduled", 0), "running": counts.get("running", 0), "expired": expired}

    # -- agents -----------------------------------------------------------------------------------------

    def heartbeat(self, host: str, address: str, now: float, version: str | None = None) -> None:
        self._write("INSERT INTO agents (host, address, last_seen, version) VALUES (?, ?, ?, ?) ON CONFLICT (host) "
                    "DO UPDATE SET address = excluded.address, last_seen = excluded.last_seen, "
                    "version = excluded.version", (host, address, now, version))

    def agents(self) -> list[Agent]:
        return [Agent(**row) for row in self._read("SELECT host, address, last_seen, version FROM agents ORDER BY host")]

    # -- per-bot restart bookkeeping -----------------------------------------------------------------------

    def bot_state(self, bot: str) -> BotState:
        row = self._one("SELECT * FROM bots WHERE bot = ?", (bot,))
        return _bot_state(row) if row else BotState(bot)

    def update_bot(self, bot: str, **fields) -> None:
        unknown = set(fields) - set(BOT_FIELDS)
        if unknown:
            raise ValueError(f"no bot field {', '.join(sorted(unknown))}")
        columns = ", ".join(f"{key} = ?" for key in fields)
        with self.transaction():
            self._write("INSERT INTO bots (bot) VALUES (?) ON CONFLICT DO NOTHING", (bot,))
            self._write(f"UPDATE bots SET {columns} WHERE bot = ?", (*fields.values(), bot))

    def bot_states(self) -> dict[str, BotState]:
        """Every bot's bookkeeping in one query (read at each scrape of the remediator)."""
        return {row["bot"]: _bot_state(row) for row in self._read("SELECT * FROM bots")}

    # -- small values (last report sent, ...) ----------------------------------------------------------------

    def get(self, key: str, default=None):
        row = self._one("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(row["value"]) if row else default

    def put(self, key: str, value) -> None:
        self._write("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)))


# the select list's end (Ledger._look): whether the alert has an open incident (`open`), and its actions (those of
# its copies' startsAt) summed, going from the alert's actions (a few) to their copies (by the primary key), never
# the other way: a storm gives an incident hundreds of copies, and reading them per delivery halved the webhook.
# Parameters: the alert's key twice.
_OPEN_ACTIONS = (
    "EXISTS (SELECT 1 FROM incidents WHERE fingerprint = ? AND alertname = ? AND bot = ? "
    "AND resolved_at IS NULL) AS open, "
    "COUNT(*) AS n, SUM(CASE WHEN state = 'done' AND outcome IN ('skipped', 'held', 'cancelled', "
    "'expired') THEN 1 ELSE 0 END) AS idle, MAX(CASE WHEN outcome = 'skipped' THEN finished_at END) AS last, "
    "SUM(CASE WHEN state <> 'done' THEN 1 ELSE 0 END) AS pending, MAX(finished_at) AS finished "
    "FROM actions a WHERE fingerprint = ? AND alertname = ? AND bot = ? AND EXISTS (SELECT 1 FROM incidents i "
    "WHERE i.fingerprint = a.fingerprint AND i.starts_at = a.starts_at AND i.alertname = a.alertname "
    "AND i.bot = a.bot AND i.resolved_at IS NULL)")


def _nothing_done(actions: dict, now: float | None) -> bool:
    """Whether the open incident's playbooks (`Ledger._open_actions`) all ended without doing anything
    (`skipped`: the bot was up when looked at; `held`: it was paused; `cancelled`, `expired`: never run): that
    incident has not been acted on, and a later copy that finds the trouble real must act — once the last
    look at the bot (`skipped`) is RECHECK_AFTER old: the copies Alertmanager's peers send within seconds of
    each other (or a storm of them) are one look, not one each; a hold that ended (`held`) looked at nothing.
    False while one is pending or running, and for an incident with no action."""
    if not actions["n"] or actions["idle"] != actions["n"]:
        return False
    return now is None or actions["last"] is None or now - actions["last"] >= RECHECK_AFTER


def _settled(actions: dict) -> float | None:
    """When the last action of the open incident finished; None while one is pending or running, or when it
    has none (nothing tells its end then)."""
    return actions["finished"] if actions["n"] and not actions["pending"] else None


def _bot_state(row: dict) -> BotState:
    return BotState(row["bot"], row["attempts"], row["last_restart_at"], row["healthy_since"],
                    bool(row["circuit_open"]), bool(row["memory_raised"]), row.get("last_start_at"))


def _boundary_key(key: tuple[str, str, str]) -> str:
    return "incident-boundary:" + json.dumps(list(key))


def _ended_key(key: tuple[str, str, str]) -> str:
    return "incident-ended:" + json.dumps(list(key))


def _epoch(starts_at: str) -> float:
    """An alert's startsAt (RFC 3339, checked by the payload parser) in seconds."""
    return datetime.fromisoformat(starts_at).timestamp()
