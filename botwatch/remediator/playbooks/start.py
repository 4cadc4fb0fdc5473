"""The start playbook (TradingBotStopped): a bot whose process runs but which stopped trading is asked to
start through its own API first (Freqtrade's POST /api/v1/start); only if that does not bring it back to
running is it restarted, by the restart playbook with its backoff and circuit."""

from __future__ import annotations

from botwatch.core.units import format_duration
from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.playbooks.base import Context, Result
from botwatch.remediator.playbooks.restart import restart_playbook


def start_playbook(ctx: Context) -> Result:
    bot = ctx.bot
    trouble, alive = ctx.trouble()
    if trouble is None:
        return Result("skipped", f"running again, nothing to do: {alive.detail}")
    if not alive.up or ctx.api is None:
        return restart_playbook(ctx)          # down, unknown (it says so), or no API to ask: only a restart can help
    if ctx.dry_run:
        return Result("dry_run", f"dry run: would ask it to start through its API ({trouble})",
                      notice=f"🧪 <b>{escape(bot.name)}</b> stopped trading; dry run: would start it." + ctx.money())
    asked = ctx.api.start()
    verdict = ctx.verify_trouble()
    after, _ = verdict.last
    if verdict.ok:
        return Result("success", f"{trouble}; started through its API, running after "
                                 f"{format_duration(round(verdict.waited, 1))}",
                      notice=f"▶️ <b>{escape(bot.name)}</b> had stopped trading ({escape(trouble)}); "
                             f"started again through its API, no restart." + ctx.money())
    result = restart_playbook(ctx)
    tried = "POST /api/v1/start " + ("did not bring it back" if asked else "failed")
    return Result(result.outcome, f"{trouble}; {tried} ({after}); {result.detail}", result.log_excerpt,
                  result.run_at, result.retry, result.notice)
