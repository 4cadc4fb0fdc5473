"""Playbooks: what the remediator does for an alert, one module each.

PLAYBOOKS is the one table of them: the runner reads it to run one, the metrics and the report to name
them. Which alert runs which is the mixin's table (`playbooks` in botwatch.core.mixin.CONFIG), the same
that labels those alerts `playbook` for Alertmanager to route: the intake chooses by it. An alert not named
there is recorded and otherwise left to people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from botwatch.core import mixin
from botwatch.remediator.playbooks.api_errors import api_auth_playbook, api_rate_limit_playbook, exchange_rate_limit_playbook
from botwatch.remediator.playbooks.base import OUTCOMES, Context, Result
from botwatch.remediator.playbooks.drawdown import drawdown_playbook
from botwatch.remediator.playbooks.restart import restart_playbook
from botwatch.remediator.playbooks.restore import restore_playbook
from botwatch.remediator.playbooks.start import start_playbook


BY_ALERT: dict[str, str] = dict(mixin.CONFIG["playbooks"])     # alertname -> the playbook it runs


@dataclass(frozen=True)
class Playbook:
    name: str                           # the `playbook` label and the ledger's name for it
    run: Callable[[Context], Result]
    verb: str                           # how the morning report says a run: "{verb} {bot} ({why})"

    @property
    def alertnames(self) -> tuple[str, ...]:
        """The alerts that run it."""
        return tuple(alertname for alertname, name in BY_ALERT.items() if name == self.name)


PLAYBOOKS = {playbook.name: playbook for playbook in (
    Playbook("restart", restart_playbook, "Restarted"),
    Playbook("start", start_playbook, "Started (through its API)"),
    Playbook("restore", restore_playbook, "Restored the trade file of"),
    Playbook("api_auth", api_auth_playbook, "Escalated API-key errors of"),
    Playbook("api_rate_limit", api_rate_limit_playbook, "Throttled"),
    Playbook("exchange_rate_limit", exchange_rate_limit_playbook, "Throttled, with its exchange's other bots,"),
    Playbook("drawdown", drawdown_playbook, "Ran on_drawdown of"),
)}
VERBS = {playbook.name: playbook.verb for playbook in PLAYBOOKS.values()}
# alerts about an exchange (label `exchange`), not one bot: the intake fans them out to the bots on it
EXCHANGE_ALERTS = ("ExchangeRateLimited",)

__all__ = ["BY_ALERT", "EXCHANGE_ALERTS", "OUTCOMES", "PLAYBOOKS", "VERBS", "Context", "Playbook", "Result"]
