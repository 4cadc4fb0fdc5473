"""The durable ledger of incidents, actions and bots (SQLite on one host, PostgreSQL for many)."""

from botwatch.remediator.ledger.ledger import (BOT_FIELDS, Action, Agent, BotState, Ledger, LedgerUnavailable,
                                               is_url)

__all__ = ["BOT_FIELDS", "Action", "Agent", "BotState", "Ledger", "LedgerUnavailable", "is_url"]
