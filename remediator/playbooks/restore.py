"""The restore playbook (TradingBotDataCorrupted): a seam onto the restore procedure of remediator/restore.py."""

from __future__ import annotations

from remediator.notifier import escape
from remediator.playbooks import Context, Result


def restore_playbook(ctx: Context) -> Result:
    if ctx.restore is None:
        return Result("escalated", "the trade file is corrupt and no restore procedure is available: escalating",
                      ctx.runtime.recent_logs(),
                      notice=f"🧨 <b>{escape(ctx.bot.name)}</b>: trade file corrupt; automatic restore unavailable.")
    return ctx.restore(ctx)
