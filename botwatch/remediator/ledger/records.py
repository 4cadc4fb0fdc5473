"""What the ledger hands out: actions, each bot's restart bookkeeping, the agents it has heard from."""

from __future__ import annotations

from dataclasses import dataclass

BOT_FIELDS = ("attempts", "last_restart_at", "healthy_since", "circuit_open", "memory_raised", "last_start_at")


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
    host: str = "local"
    attempt: int = 0
    lease_until: float | None = None
    deadline: float | None = None
    worker: str | None = None


@dataclass(frozen=True)
class BotState:
    bot: str
    attempts: int = 0
    last_restart_at: float | None = None
    healthy_since: float | None = None
    circuit_open: bool = False
    memory_raised: bool = False
    last_start_at: float | None = None      # a bot botwatch started is given verify_within to come up


@dataclass(frozen=True)
class Agent:
    host: str
    address: str
    last_seen: float
    version: str | None
