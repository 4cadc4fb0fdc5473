"""Playbooks: what the remediator does for an alert, one module each.

PLAYBOOKS is the one table of them: the intake reads it to choose a playbook by alertname, the runner
to run one, the metrics and the report to name them. An alert not named here is recorded and otherwise
left to people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from botwatch.remediator.playbooks.api_errors import api_auth_playbook, api_rate_limit_playbook, exchange_rate_limit_playbook
from botwatch.remediator.playbooks.base import OUTCOMES, Context, Result
from botwatch.remediator.playbooks.restart import restart_playbook
from botwatch.remediator.playbooks.restore import restore_playbook
from botwatch.remediator.playbooks.start import start_playbook


@dataclass(frozen=True)
class Playbook:
    name: str                           # the `playbook` label and the ledger's name for it
    alertnames: tuple[str, ...]         # the alerts that run it
    run: Callable[[Context], Result]


PLAYBOOKS = {playbook.name: playbook for playbook in (
    Playbook("restart", ("TradingBotDown", "TradingBotStuck"), restart_playbook),
    Playbook("start", ("TradingBotStopped",), start_playbook),
    Playbook("restore", ("TradingBotDataCorrupted",), restore_playbook),
    Playbook("api_auth", ("TradingBotApiKeyErrors",), api_auth_playbook),
    Playbook("api_rate_limit", ("TradingBotRateLimited",), api_rate_limit_playbook),
    Playbook("exchange_rate_limit", ("ExchangeRateLimited",), exchange_rate_limit_playbook),
)}
BY_ALERT = {alertname: playbook.name for playbook in PLAYBOOKS.values() for alertname in playbook.alertnames}
# alerts about an exchange (label `exchange`), not one bot: the intake fans them out to the bots on it
EXCHANGE_ALERTS = ("ExchangeRateLimited",)

__all__ = ["BY_ALERT", "EXCHANGE_ALERTS", "OUTCOMES", "PLAYBOOKS", "Context", "Playbook", "Result"]
