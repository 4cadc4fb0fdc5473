"""The ledger's tables, in the words both dialects understand ({serial}, {real}, {blob} are filled per dialect),
and the columns a ledger made by an older botwatch gains at start-up."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id {ID},
    received_at {REAL} NOT NULL,
    alertname TEXT, bot TEXT, status TEXT, fingerprint TEXT, starts_at TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS incidents (
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    bot TEXT NOT NULL,
    opened_at {REAL} NOT NULL,
    resolved_at {REAL},
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (fingerprint, alertname, bot) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS actions (
    id {ID},
    bot TEXT NOT NULL,
    playbook TEXT NOT NULL,
    alertname TEXT,
    fingerprint TEXT,
    starts_at TEXT,
    state TEXT NOT NULL,            -- scheduled | running | done
    outcome TEXT,                   -- success | failed | skipped | held | deferred | dry_run | escalated | gave_up | cancelled | expired
    run_at {REAL} NOT NULL,
    started_at {REAL},
    finished_at {REAL},
    detail TEXT,
    log_excerpt TEXT
);
CREATE INDEX IF NOT EXISTS actions_due ON actions (state, run_at);
CREATE INDEX IF NOT EXISTS actions_bot ON actions (bot, finished_at);
CREATE INDEX IF NOT EXISTS actions_incident ON actions (fingerprint, alertname, bot, starts_at);
CREATE TABLE IF NOT EXISTS bots (
    bot TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL DEFAULT 0,      -- restarts since the bot was last healthy for healthy_reset_after
    last_restart_at {REAL},
    healthy_since {REAL},
    circuit_open INTEGER NOT NULL DEFAULT 0,
    memory_raised INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS agents (
    host TEXT PRIMARY KEY,
    address TEXT NOT NULL,          -- where Prometheus scrapes it, host:port
    last_seen {REAL} NOT NULL,
    version TEXT
);
CREATE TABLE IF NOT EXISTS pauses (
    id {ID},
    scope TEXT NOT NULL,            -- bot | host | all
    target TEXT NOT NULL,           -- the bot's (or a window's bots, comma-separated) or the host's name, '*' for all
    reason TEXT NOT NULL,           -- pause | maintenance | operator_stop
    comment TEXT NOT NULL,          -- the operator's words, or the maintenance window's name
    who TEXT NOT NULL,
    since {REAL} NOT NULL,
    until {REAL},                   -- NULL: until resumed
    silence_id TEXT,                -- its Alertmanager silence
    occurrence TEXT,                -- a maintenance window's occurrence ("name@start"): one pause each
    ended_at {REAL},
    ended_by TEXT
);
CREATE INDEX IF NOT EXISTS pauses_open ON pauses (ended_at);
CREATE UNIQUE INDEX IF NOT EXISTS pauses_occurrence ON pauses (occurrence);
"""
# columns added after the first release: a ledger file from before gets them at start-up
ADDED_COLUMNS = {
    "actions": (
        ("host", "TEXT NOT NULL DEFAULT 'local'"),      # where the job runs: 'local' here, else that host's agent
        ("attempt", "INTEGER NOT NULL DEFAULT 0"),      # claims so far: the fencing token of the current one
        ("lease_until", "{REAL}"),                      # a running job whose lease passed may be claimed again
        ("deadline", "{REAL}"),                         # a job not started by then expires (a host's jobs)
        ("worker", "TEXT"),                             # who holds the current claim
    ),
    "bots": (
        ("last_start_at", "{REAL}"),                    # when a playbook last started it (restart, restore)
    ),
}
