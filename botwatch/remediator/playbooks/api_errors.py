"""The API-error playbooks: auth errors never restart the bot; rate limits ask it to slow down.

They run only commands from the config (`on_auth_error`, `on_rate_limit`, `exchanges.X.on_rate_limit`,
argv lists, no shell); the one substitution is `{pid}`, the bot's pid as its liveness source reports it.
ExchangeRateLimited (the sum over every bot on one exchange) runs each of those bots' own
`on_rate_limit`, and the exchange's command once (the intake schedules them; `exchange_rate_limit_playbook`
is the exchange's part).
"""

from __future__ import annotations

from botwatch.remediator.tell.notifier import escape
from botwatch.remediator.playbooks.base import Context, Result


def api_auth_playbook(ctx: Context) -> Result:
    bot = ctx.bot
    excerpt = ctx.runtime.recent_logs()
    steps = ["API-key errors: not restarted (a restart doesn't fix a key)"]
    command = bot.on_auth_error
    if command and ctx.dry_run:
        steps.append(f"dry run: would run on_auth_error {command}")
    elif command:
        code, output = ctx.run_command(command)
        steps.append(f"ran on_auth_error {command[0]}: exit {code}" + (f": {output[-300:]}" if output else ""))
    else:
        steps.append("no on_auth_error command configured")
    return Result("escalated", "; ".join(steps), excerpt,
                  notice=f"🔑 <b>{escape(bot.name)}</b> is getting API-key errors. It was not restarted. "
                         + escape(steps[-1]) + ". Check or rotate its key.")


def api_rate_limit_playbook(ctx: Context) -> Result:
    bot = ctx.bot
    command = bot.on_rate_limit
    if not command:
        return Result("skipped", "rate-limited; no on_rate_limit command configured", ctx.runtime.recent_logs(),
                      notice=f"🐢 <b>{escape(bot.name)}</b> is being rate-limited; no on_rate_limit configured.")
    argv = command
    if any("{pid}" in arg for arg in command):
        pid = ctx.check_alive().pid
        if not pid:
            return Result("failed", "on_rate_limit needs {pid} but the bot's pid is unknown", ctx.runtime.recent_logs())
        argv = [arg.replace("{pid}", str(pid)) for arg in command]
    if ctx.dry_run:
        return Result("dry_run", f"dry run: would run on_rate_limit {argv}")
    code, output = ctx.run_command(argv)
    outcome = "success" if code == 0 else "failed"
    return Result(outcome, f"rate-limited; ran on_rate_limit {argv[0]}: exit {code}" + (f": {output[-300:]}" if output else ""),
                  notice=f"🐢 <b>{escape(bot.name)}</b> is being rate-limited; asked it to slow down "
                         f"({'ok' if code == 0 else f'exit {code}'}).")


def exchange_rate_limit_playbook(ctx: Context) -> Result:
    """The exchange-wide part of ExchangeRateLimited: its `exchanges.X.on_rate_limit`, once per incident."""
    exchange = ctx.extra.get("exchange") or ctx.bot.exchange_name()
    settings = ctx.config.exchanges.get(exchange) if exchange else None
    command = settings.on_rate_limit if settings else None
    if not command:
        return Result("skipped", f"{exchange}: rate-limited across its bots; no exchanges.{exchange}.on_rate_limit "
                                 "and no bot's own on_rate_limit configured",
                      notice=f"🐢 <b>{escape(exchange)}</b> is rate-limiting botwatch's bots together; no "
                             "on_rate_limit is configured for it.")
    if ctx.dry_run:
        return Result("dry_run", f"dry run: would run exchanges.{exchange}.on_rate_limit {command}")
    code, output = ctx.run_command(command)
    outcome = "success" if code == 0 else "failed"
    return Result(outcome, f"{exchange}: rate-limited across its bots; ran exchanges.{exchange}.on_rate_limit "
                           f"{command[0]}: exit {code}" + (f": {output[-300:]}" if output else ""),
                  notice=f"🐢 <b>{escape(exchange)}</b> is rate-limiting botwatch's bots together; ran its "
                         f"on_rate_limit ({'ok' if code == 0 else f'exit {code}'}).")
