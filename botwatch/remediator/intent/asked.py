"""What an operator asks from a desk (a Telegram chat, the status page): each request is an action in the
ledger (playbook `command`) and a line in the operations log, saying who asked; a restart goes through its
playbook, backoff, circuit and pauses, as an alert's would."""

from __future__ import annotations

from botwatch.remediator.actions.runner import deadline_for


def record_command(r, bot: str, what: str, who: str, outcome: str) -> None:
    """`what` asked by `who` (`telegram:@ana`, `web:ana`) about `bot` ("" for all bots) ended in `outcome`."""
    now = r.clock()
    detail = f"{what} by {who}"
    known = r.config.bot(bot) if bot else None
    r.ledger.record(bot or "", "command", now, outcome, detail, host=known.host if known else "local")
    r.opslog.append(now, bot or "all bots", None, "command", outcome, 0.0, detail)


def schedule_restart(r, bot, who: str, where: str) -> None:
    """A restart of `bot` (a config Bot) queued now, on its host; its outcome follows as every restart's does."""
    now = r.clock()
    r.ledger.schedule(bot.name, "restart", now, alertname="command", detail=f"asked {where} by {who}",
                      host=bot.host, deadline=deadline_for(r.config, bot.host, now))
    r.wake()
