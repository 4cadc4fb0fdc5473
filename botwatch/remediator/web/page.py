"""The status page at `/`: every bot's row, the open incidents, the pauses, the hosts; a bot's own page at
`/bots/NAME` with its forms (pause with a duration and reason, resume, reset, restart with a confirmation).

Reading needs a login unless `status_page.public`; acting always does, with the session's CSRF token. The
page refreshes its board from `/board` (and a bot's from `/bots/NAME/board`) every few seconds without a
reload; it works without JavaScript too, only without the refresh. Templates and the stylesheet are in the
package: nothing is fetched from elsewhere, so the page works offline.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request

from botwatch import __version__
from botwatch.remediator.intent.asked import record_command, schedule_restart
from botwatch.remediator.intent.pauses import PauseError, Scope, parse_until
from botwatch.remediator.web.common import remediator
from botwatch.remediator.web.login import actor, current, reader

page = Blueprint("page", __name__)

REFRESH_EVERY = 5          # seconds between two refreshes of a board in the browser
DONE = {"paused": "Paused.", "resumed": "Resumed: the bot is botwatch's again.", "not-paused": "It was not paused.",
        "reset": "Circuit closed, restart count reset.", "restart": "Restart scheduled: it goes through its playbook.",
        "cancelled": "Restart cancelled."}
# never framed, never a script or style from elsewhere, forms post only here
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                      "form-action 'self'; base-uri 'none'",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}


@page.after_app_request
def _headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def gatherer():
    return current_app.extensions["gatherer"]


def _render(template: str, **values) -> str:
    r = remediator()
    return render_template(template, version=__version__, dry_run=r.config.remediation.dry_run, session=current(),
                           refresh=REFRESH_EVERY, now=r.clock(), **values)


def _bot(name: str):
    bot = remediator().config.bot(name)
    if bot is None:
        abort(404, f"no bot {name[:64]!r} in the config")
    return bot


@page.get("/")
@reader
def home():
    return _render("status.html", board=gatherer().board())


@page.get("/board")
@reader
def board():
    return _render("_board.html", board=gatherer().board())


@page.get("/bots/<name>")
@reader
def bot_page(name: str):
    bot = _bot(name)
    return _render("bot.html", bot=bot, **_bot_values(bot), done=DONE.get(request.args.get("done", "")),
                   error=request.args.get("error", "")[:300])


@page.get("/bots/<name>/board")
@reader
def bot_board(name: str):
    bot = _bot(name)
    return _render("_bot.html", bot=bot, **_bot_values(bot))


def _bot_values(bot) -> dict:
    """What a bot's own board shows: its row and its last 15 actions (the commands about it too)."""
    return {"row": gatherer().board().row(bot.name), "actions": remediator().ledger.actions(bot=bot.name, limit=15)}


def _who() -> str:
    return f"web:{current().user}"


def _did(bot, what: str, outcome: str, done: str):
    """An action from the page ended: recorded as the operator's command, the board gathered afresh, and back to
    the bot's page saying `done`."""
    r = remediator()
    record_command(r, bot.name, what, _who(), outcome)
    gatherer().stale()
    return _back(bot, done)


def _back(bot, done: str | None = None, error: str | None = None):
    """To the bot's page, saying what was done (a word DONE knows) or what went wrong."""
    query = f"?error={quote(error[:300])}" if error else f"?done={done}" if done else ""
    return redirect(f"/bots/{bot.name}{query}", code=303)


@page.post("/bots/<name>/pause")
@actor
def pause(name: str):
    r, bot = remediator(), _bot(name)
    duration = request.form.get("for", "").strip()[:32]
    reason = request.form.get("reason", "").strip()[:300] or "paused from the status page"
    try:
        until = parse_until(r.clock(), duration or None, None)
        r.pauses.pause(Scope((bot.name,)), until, reason, _who())
    except PauseError as err:
        record_command(r, bot.name, f"pause {duration}".strip(), _who(), "refused")
        return _back(bot, error=str(err))
    return _did(bot, f"pause {duration or 'until resumed'}: {reason}", "success", "paused")


@page.post("/bots/<name>/resume")
@actor
def resume(name: str):
    r, bot = remediator(), _bot(name)
    ended = r.pauses.resume(Scope((bot.name,)), _who())
    return _did(bot, "resume", "success" if ended else "noop", "resumed" if ended else "not-paused")


@page.post("/bots/<name>/reset")
@actor
def reset(name: str):
    bot = _bot(name)
    remediator().intake.reset(bot.name)
    return _did(bot, "reset", "success", "reset")


@page.post("/bots/<name>/restart")
@actor
def restart(name: str):
    """Asks first: the form without `confirm=yes` answers with the confirmation, which posts it again."""
    r, bot = remediator(), _bot(name)
    answer = request.form.get("confirm", "")
    if answer == "no":
        return _did(bot, "restart cancelled", "cancelled", "cancelled")
    if answer != "yes":
        hold = r.pauses.holding(bot.name)
        return _render("confirm.html", bot=bot, held=r.pauses.says(hold) if hold else None)
    schedule_restart(r, bot, _who(), "on the status page")
    return _did(bot, "restart confirmed", "scheduled", "restart")


@page.app_template_filter("when")
def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


@page.app_template_filter("ago")
def ago(ts: float | None) -> str:
    """How long since `ts`, in the two largest units: "3 h 20 m"."""
    if not ts:
        return ""
    seconds = max(0, int(remediator().clock() - ts))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


@page.app_template_filter("pct")
def pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.1f}%"


@page.app_template_filter("money")
def money(value: float | None) -> str:
    return "?" if value is None else f"{value:+,.2f}"


@page.app_template_filter("cell")
def cell(value: float | None) -> str:
    if value is None:
        return "none"
    return "up" if value >= 0.999 else "down" if value <= 0.001 else "part"
