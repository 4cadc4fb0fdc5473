"""The restore playbook (TradingBotDataCorrupted): the procedures of restore/ (csvfile.py for a CSV trade file,
sqlite.py for a database, with its kind's fill-in from restore/kinds.py)."""

from __future__ import annotations

import sqlite3

from botwatch.remediator import faults
from botwatch.remediator.restore.backup import check_snapshot, snapshot, store_for
from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.playbooks.base import Context, Result
from botwatch.remediator.restore.csvfile import RestoreFailed, restore
from botwatch.remediator.restore.kinds import fill_in, mirrored
from botwatch.remediator.restore.sqlite import restore_database
from botwatch.remediator.runtimes import RuntimeFailure


def _reached(ctx: Context, progress: str, step: str) -> None:
    """Remember how far this action's restore got, so that a run cut short by a crash is finished, not
    done again (a second run would quarantine the file the first one just restored)."""
    ctx.ledger.put(progress, step)
    if step == "started":        # the restart playbook gives a bot it started verify_within to come up
        ctx.ledger.update_bot(ctx.bot.name, last_start_at=ctx.clock())
    faults.reached(f"restore/{step}")


def _finish_interrupted(ctx: Context, excerpt: str) -> Result:
    """This action's restore had replaced the file when the remediator stopped: start the bot if it is
    not running, and verify the bot and its file, as the procedure's last steps do."""
    try:
        if not ctx.check_alive().up:
            ctx.runtime.start()
            ctx.ledger.update_bot(ctx.bot.name, last_start_at=ctx.clock())
    except RuntimeFailure as err:
        return Result("failed", f"restore completed, but starting the bot failed: {err}", excerpt, retry=True)
    alive = ctx.verify(lambda: (lambda alive: (alive.up, alive))(ctx.check_alive())).last
    check = check_snapshot(snapshot(ctx.bot.data_file, ctx.bot.store), ctx.bot, ctx.clock)
    if not alive.up or not check.valid:
        return Result("failed", f"restore completed before an interruption; now the bot is "
                                f"{'up' if alive.up else 'down'} and its file is {'valid' if check.valid else 'corrupt'}",
                      excerpt, retry=True)
    return Result("success", f"restore completed before a remediator restart; verified: bot up, file valid "
                             f"({check.rows} rows)", excerpt)


def restore_playbook(ctx: Context) -> Result:
    if ctx.restore is not None:   # a seam for tests and other procedures
        return ctx.restore(ctx)
    bot = ctx.bot
    excerpt = ctx.runtime.recent_logs()
    progress = f"restore-step:{ctx.action.id}"
    if ctx.ledger.get(progress) in ("replaced", "started"):
        return _finish_interrupted(ctx, excerpt)
    if ctx.dry_run:
        return Result("dry_run", "dry run: would stop the bot, quarantine the file, restore and replay", excerpt)
    try:
        if bot.kind.database:
            report = restore_database(bot, store_for(ctx.config.backup), ctx.runtime, ctx.check_alive,
                                      fill_in(bot, ctx.mirror, ctx.clock, ctx.sleep),
                                      ctx.clock, ctx.sleep, ctx.config.remediation.verify_after,
                                      ctx.config.remediation.verify_within, on_step=lambda step: _reached(ctx, progress, step))
        else:
            report = restore(bot, store_for(ctx.config.backup), ctx.runtime, ctx.check_alive, ctx.clock, ctx.sleep,
                             ctx.config.remediation.verify_after, ctx.config.remediation.verify_within, on_step=lambda step: _reached(ctx, progress, step))
    except (RestoreFailed, RuntimeFailure, OSError, sqlite3.Error) as err:
        return Result("failed", f"restore failed: {err}", excerpt,
                      notice=f"🧨 <b>{escape(bot.name)}</b>: trade file corrupt and the restore failed: "
                             f"{escape(err)}. The corrupt file is kept; see the operations log.")
    sources = ", ".join(f"{count} from {where}" for where, count in report.sources.items()) \
        or f"{report.replayed} from {'the fill mirror' if mirrored(bot) else 'the journal'}"
    missing = (f" ⚠️ Not checked, fills may be missing: {escape('; '.join(report.missing))}."
               if report.missing else "")
    return Result("success", report.detail, excerpt,
                  notice=f"🩹 <b>{escape(bot.name)}</b>: corrupt trade file restored "
                         f"({report.from_backup} from the backup, {escape(sources)}); "
                         f"the corrupt copy is kept as <code>{escape(report.quarantine.name if report.quarantine else '-')}</code>."
                         + missing)
