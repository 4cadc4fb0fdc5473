"""What every playbook gets (a Context) and gives back (a Result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from botwatch.core.checks import Aliveness
    from botwatch.core.config import Bot, Config
    from remediator.ledger import Action, Ledger
    from remediator.runtimes import Runtime

# how a playbook run ends ("deferred" is not an end: the run is due again at Result.run_at)
OUTCOMES = ("success", "failed", "skipped", "dry_run", "escalated", "gave_up")


@dataclass
class Result:
    outcome: str                     # success | failed | skipped | deferred | dry_run | escalated | gave_up
    detail: str
    log_excerpt: str | None = None
    run_at: float | None = None      # deferred: when to run again
    retry: bool = False              # failed: schedule another attempt (backoff decides when)
    notice: str | None = None        # a Telegram notice, HTML


@dataclass
class Context:
    """What a playbook may use: the bot's config and runtime, the ledger, time, and the shared checks."""

    config: "Config"
    bot: "Bot"
    action: "Action"
    runtime: "Runtime"
    ledger: "Ledger"
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    check_alive: Callable[[], "Aliveness"]
    run_command: Callable[..., tuple[int, str]]
    restore: Callable[["Context"], Result] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.config.remediation.dry_run
