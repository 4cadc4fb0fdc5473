"""The drawdown playbook (TradingBotDrawdown): the page is Alertmanager's; this runs the bot's `on_drawdown`, once
per incident — an argv list from the config (no shell), or the built-in `freqtrade_stopentry`: Freqtrade's
POST /api/v1/stopentry, after which it enters no new trade and manages its open ones as before. Without
`on_drawdown` nothing is done: a drawdown is the trader's to judge, and botwatch never stops a bot by itself.
"""

from __future__ import annotations

from botwatch.remediator.playbooks.base import Context, Result
from botwatch.remediator.tell.notifier import escape

STOPENTRY = "freqtrade_stopentry"


def drawdown_playbook(ctx: Context) -> Result:
    bot = ctx.bot
    command = bot.on_drawdown
    if not command:
        return Result("skipped", "drawdown past max_drawdown; no on_drawdown configured: it trades on")
    what = "ask it to stop entering trades (POST /api/v1/stopentry)" if command == STOPENTRY else \
        f"run on_drawdown {command}"
    if ctx.dry_run:
        return Result("dry_run", f"dry run: would {what}")
    if command == STOPENTRY:
        if ctx.api is None or ctx.api.post("stopentry") is None:
            return Result("failed", "drawdown past max_drawdown; POST /api/v1/stopentry got no answer", retry=True,
                          notice=f"📉 <b>{escape(bot.name)}</b>: drawdown past its max; asking it to stop entering "
                                 f"trades failed (its API did not answer).")
        return Result("success", "drawdown past max_drawdown; asked it to stop entering trades (POST "
                                 "/api/v1/stopentry): its open trades are managed as before; /start or botwatch resume "
                                 "lets it enter again",
                      notice=f"📉 <b>{escape(bot.name)}</b>: drawdown past its max; asked it to stop entering new "
                             f"trades (its open ones are managed as before). It stays so until you start it."
                             + ctx.money())
    code, output = ctx.run_command(command)
    outcome = "success" if code == 0 else "failed"
    return Result(outcome, f"drawdown past max_drawdown; ran on_drawdown {command[0]}: exit {code}"
                  + (f": {output[-300:]}" if output else ""),
                  notice=f"📉 <b>{escape(bot.name)}</b>: drawdown past its max; ran its on_drawdown "
                         f"({'ok' if code == 0 else f'exit {code}'})." + ctx.money())
