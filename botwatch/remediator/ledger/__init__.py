"""The durable ledger of incidents, actions and bots (SQLite on one host, PostgreSQL for many)."""

from botwatch.remediator.ledger.dialects import LedgerUnavailable, is_url
from botwatch.remediator.ledger.ledger import Ledger
from botwatch.remediator.ledger.records import BOT_FIELDS, Action, Agent, BotState

__all__ = ["BOT_FIELDS", "Action", "Agent", "BotState", "Ledger", "LedgerUnavailable", "is_url"]
