"""What every playbook gets (a Context) and gives back (a Result)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from botwatch.core.checks import loop_trouble
from botwatch.remediator.verify import Verdict, verify

log = logging.getLogger(__name__)

# alerts about a live bot's main loop: the bot's own API, not its process, says whether help is needed
LOOP_ALERTS = ("TradingBotStuck", "TradingBotStopped")

if TYPE_CHECKING:
    from pathlib import Path

    from botwatch.core.freqtrade_api import FreqtradeAPI
    from botwatch.core.checks import Aliveness
    from botwatch.core.config import Bot, Config
    from botwatch.remediator.ledger import Action, BotState
    from botwatch.remediator.runtimes import Runtime

class LedgerView(Protocol):
    """What a playbook reads and writes in the ledger: its bot's restart bookkeeping and its own progress.
    The remediator hands it the Ledger; an agent a RemoteLedger that goes through the job's claim."""

    def bot_state(self, bot: str) -> BotState: ...

    def update_bot(self, bot: str, **fields) -> None: ...

    def get(self, key: str, default=None): ...

    def put(self, key: str, value) -> None: ...


# how a playbook run ends ("deferred" is not an end: the run is due again at Result.run_at)
OUTCOMES = ("success", "failed", "skipped", "held", "dry_run", "escalated", "gave_up")


@dataclass
class Result:
    outcome: str                     # success | failed | skipped | held | deferred | dry_run | escalated | gave_up
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
    ledger: LedgerView
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    check_alive: Callable[[], "Aliveness"]
    run_command: Callable[..., tuple[int, str]]
    restore: Callable[["Context"], Result] | None = None
    api: "FreqtradeAPI | None" = None            # a preset bot's own REST API
    mirror: "Path | None" = None                  # a preset bot's fill mirror (botwatch.remediator.restore.mirror)
    extra: dict = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.config.remediation.dry_run

    def verify(self, judge: Callable[[], tuple[bool, object]]) -> "Verdict":
        """Poll `judge` from `verify_after` until ok or `verify_within` (verify.py)."""
        rem = self.config.remediation
        return verify(judge, self.clock, self.sleep, rem.verify_after, rem.verify_within)

    def verify_trouble(self) -> "Verdict":
        """Poll until the bot's trouble is gone; `last` is (trouble, aliveness) of the deciding look."""
        def judge():
            trouble, alive = self.trouble()
            return trouble is None, (trouble, alive)
        return self.verify(judge)

    def money(self) -> str:
        """"\n💰 2 open positions, 1840.00 USDT; 1 without a known stoploss on the exchange" — what the bot holds, from
        its own records, valued at entry or last fill (it may be down: no price of its own); "" when its records
        can't be read (a corrupt file is the restore's, and its notice says so)."""
        from botwatch.core.exposure import words
        from botwatch.core.presets import open_store
        from botwatch.remediator.tell.notifier import escape
        try:
            store = open_store(self.bot, self.clock)
            if not store.collect().valid:
                return ""
            return "\n💰 " + escape(words(store.summary().exposure))
        except Exception:           # a notice never fails for want of figures
            log.debug("%s: exposure for the notice could not be read", self.bot.name, exc_info=True)
            return ""

    def trouble(self) -> tuple[str | None, "Aliveness"]:
        """Why the bot needs help now, as its alert sees it (down; for a preset bot also stuck or not
        running), or None; and the aliveness it was judged by."""
        alive = self.check_alive()
        if alive.unknown:
            return f"unknown: {alive.detail}", alive
        if not alive.up:
            return f"down: {alive.detail}", alive
        if self.action.alertname in LOOP_ALERTS:
            if alive.health is not None and not alive.health.up:
                return f"stuck: its API does not answer ({alive.health.detail})", alive
            trouble = loop_trouble(self.bot, self.api, self.clock())
            if self.extra.get("restarted") and trouble is not None and trouble.startswith("state "):
                # up in its initial_state after botwatch's restart: the stop watch (remediator.intent.stops)
                # brings it back to the state it was in before, or leaves the one its operator configured
                return None, alive
            return trouble, alive
        return None, alive
