"""The restart playbook (TradingBotDown, TradingBotStuck): restart, verify, back off, give up.

A bot is restarted at once, then `max_attempts` more times, each after its `backoff` from the last (the
defaults: after 5, 15 and 30 minutes); the count resets once the bot has stayed healthy for
`healthy_reset_after`. When those restarts did not keep it up the circuit opens: no more restarts until
it recovers or an operator resets it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from botwatch.core.config import HEALTH_ONLY
from botwatch.core.units import format_duration
from botwatch.remediator import faults
from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.playbooks.base import Context, Result
from botwatch.remediator.runtimes import DockerRuntime, RuntimeFailure

DAMAGE = ("not_a_database", "truncated", "damaged")    # the SQLite checks a bot can't start past


def restart_playbook(ctx: Context) -> Result:
    bot, rem = ctx.bot, ctx.config.remediation
    state = ctx.ledger.bot_state(bot.name)
    now = ctx.clock()
    if state.circuit_open:
        return Result("skipped", "circuit open: no restarts until the bot recovers or an operator resets it")
    trouble, alive = ctx.trouble()
    if trouble is None:
        ctx.ledger.update_bot(bot.name, healthy_since=now)
        return Result("skipped", f"already up, not restarted: {alive.detail}")
    if alive.unknown:
        return Result("skipped", f"not restarted: its runtime could not be asked ({alive.detail}); unknown is "
                                 "not down (BotwatchCheckUnknown)")
    starting = _still_starting(ctx, state, alive, now)
    if starting is not None:
        return Result("deferred", f"{trouble}; botwatch started it {format_duration(round(now - state.last_start_at))} "
                                  f"ago and its process runs: still starting, looked at again at {_hhmm(starting)}",
                      run_at=starting)
    if state.attempts >= rem.restarts:
        ctx.ledger.update_bot(bot.name, circuit_open=1)
        return Result("gave_up", f"{state.attempts} restarts did not keep it up; circuit open, escalating",
                      ctx.runtime.recent_logs(),
                      notice=f"🛑 <b>{escape(bot.name)}</b>: gave up after {state.attempts} restarts. "
                             f"Automatic recovery is off until it recovers or "
                             f"<code>botwatch remediator reset {escape(bot.name)}</code>." + ctx.money())
    if state.attempts and state.last_restart_at is not None:
        wait = rem.backoff[min(state.attempts - 1, len(rem.backoff) - 1)]
        earliest = state.last_restart_at + wait
        if now < earliest:
            return Result("deferred", f"backoff: restart {state.attempts + 1} waits {format_duration(wait)} "
                                      f"after the last, until {_hhmm(earliest)}", run_at=earliest)
    corrupt = _database_corrupt(ctx)
    if corrupt:
        return Result("skipped", f"{trouble}; not restarted: {corrupt} — it would fail the same way; the restore "
                                 "(TradingBotDataCorrupted) puts back a good copy and starts it", ctx.runtime.recent_logs())
    if ctx.runtime.name == HEALTH_ONLY:
        return Result("escalated", f"{trouble}; known only by its health endpoint: nothing to "
                                   "restart, escalating", ctx.runtime.recent_logs(),
                      notice=f"🚨 <b>{escape(bot.name)}</b> is down and botwatch can't restart it (no process, "
                             f"container or unit in the config)." + ctx.money())
    attempt = state.attempts + 1
    excerpt = ctx.runtime.recent_logs()
    steps = [trouble]
    if ctx.dry_run:
        return Result("dry_run", f"dry run: would restart ({ctx.runtime.name}), attempt {attempt}/{rem.restarts}; "
                                 + "; ".join(steps), excerpt,
                      notice=f"🧪 <b>{escape(bot.name)}</b> is down; dry run: would restart it." + ctx.money())
    try:
        steps += _raise_memory_after_oom(ctx, state)
        ctx.extra["restarted"] = True
        faults.reached("restart-before")
        ctx.runtime.restart()
    except RuntimeFailure as err:
        _count_attempt(ctx, attempt, ctx.clock())
        return Result("failed", "; ".join(steps + [f"restart failed: {err}"]), excerpt, retry=True,
                      notice=f"⚠️ <b>{escape(bot.name)}</b>: restart {attempt}/{rem.restarts} failed: "
                             f"{escape(err)}" + ctx.money())
    # counted once the restart has been done: a crash before it leaves no attempt (and no backoff) behind,
    # a crash after it finds the bot up when the action runs again. The backoff counts from now: a bot
    # that ignored SIGTERM took stop_timeout to stop, which must not shorten the wait before the next try
    _count_attempt(ctx, attempt, ctx.clock())
    faults.reached("restart-after")
    verdict = ctx.verify_trouble()
    trouble, alive = verdict.last
    faults.reached("restart-verified")
    took = format_duration(round(verdict.waited, 1))
    if verdict.ok:
        ctx.ledger.update_bot(bot.name, healthy_since=ctx.clock())
        return Result("success", "; ".join(steps + [f"restarted, attempt {attempt}/{rem.restarts}; "
                                                    f"up after {took}: {alive.detail}"]),
                      excerpt, notice=f"🔧 <b>{escape(bot.name)}</b> was down; restarted and verified up "
                                      f"in {took} (attempt {attempt}/{rem.restarts})." + ctx.money())
    return Result("failed", "; ".join(steps + [f"restarted, attempt {attempt}/{rem.restarts}; after "
                                               f"{took} still {trouble}"]),
                  excerpt, retry=True,
                  notice=f"⚠️ <b>{escape(bot.name)}</b>: restarted but still not well after "
                         f"{took} (attempt {attempt}/{rem.restarts})." + ctx.money())


def _still_starting(ctx: Context, state, alive, now: float) -> float | None:
    """When to look again at a bot botwatch started (a restart, a restore) less than verify_within ago whose
    process runs: a Freqtrade replaying its database, or a bot whose health endpoint is not up yet, is not
    stuck or down, and restarting it would start it a second time. None when it is not starting (its process
    is gone, or it was started long enough ago)."""
    if state.last_start_at is None or alive.liveness is None or not alive.liveness.up:
        return None
    until = state.last_start_at + ctx.config.remediation.verify_within
    return until if now < until else None


def _database_corrupt(ctx: Context) -> str | None:
    """Why a bot's SQLite trade database is corrupt, or None: a bot that died of it (Freqtrade exits on
    "file is not a database") would only die again, and each restart would spend an attempt towards
    giving up. Only damage counts: a database not there yet, or without its tables yet, is the bot's to
    create when it starts. A CSV file is not checked: a bot appends to one whatever is in it."""
    bot = ctx.bot
    if not bot.kind.database:
        return None
    status = bot.kind.open_database(bot.data_file, name=bot.name).collect()
    damage = [check for check in DAMAGE if status.problems.get(check)]
    return f"its database is corrupt ({', '.join(damage)})" if damage else None


def _count_attempt(ctx: Context, attempt: int, now: float) -> None:
    ctx.ledger.update_bot(ctx.bot.name, attempts=attempt, last_restart_at=now, last_start_at=now, healthy_since=None)


def _raise_memory_after_oom(ctx: Context, state) -> list[str]:
    """Docker: an OOM-killed container gets a higher memory limit, once, up to memory_limit_cap."""
    runtime, cap = ctx.runtime, ctx.bot.memory_limit_cap
    if not isinstance(runtime, DockerRuntime) or not runtime.oom_killed():
        return []
    if not cap or state.memory_raised:
        return ["OOM-killed; memory limit left as is" + (" (raised once already)" if state.memory_raised else "")]
    raised = runtime.raise_memory_limit(cap)
    ctx.ledger.update_bot(ctx.bot.name, memory_raised=1)
    if raised is None:
        return [f"OOM-killed; memory limit already at or above the cap ({cap} bytes)"]
    return [f"OOM-killed; memory limit raised from {raised[0]} to {raised[1]} bytes (cap {cap})"]


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S UTC")
