"""The commands an operator sends the bot in Telegram: who may, what each does, what it answers.

A command names bots only by the config's names (a word from a message is a key into the config, never a
path, a shell word or an argument); every command is an action in the ledger (playbook `command`) and a
line in the operations log. A chat or user not on `telegram.commands.allow` learns nothing: at most one
generic answer an hour per chat, and its ids in the log.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from botwatch.core import mixin
from botwatch.core.config import Config
from botwatch.core.units import parse_duration
from botwatch.remediator.intent.asked import record_command, schedule_restart
from botwatch.remediator.intent.pauses import PauseError, Scope, hhmm
from botwatch.remediator.intent.silences import SilenceError
from botwatch.remediator.tell.notifier import LIMIT, escape, split_message
from botwatch.remediator.tell.report import PrometheusAPI, collect

log = logging.getLogger(__name__)

STRANGER_EVERY = 3600.0     # seconds between two answers to a chat that may not command
CONFIRM_WITHIN = 300.0      # a restart button is good this long
HELP = """<b>botwatch</b> commands
/status — every bot: state, last action, 24 h uptime, P&amp;L
/status BOT — its checks, open incidents, last 5 actions, positions
/pause BOT [2h] [reason] — botwatch leaves it alone (no restart, alerts quiet)
/resume BOT — hand it back to botwatch
/restart BOT — restart it through its playbook (asks first)
/reset BOT — close its circuit, forget past restarts
/report — today's report, now
/ack — as a reply to an alert: silence it until it resolves
/help — this"""


@dataclass(frozen=True)
class Asker:
    chat: int
    user: int
    name: str            # @username or the user id: who, in the ledger and the operations log
    private: bool


class Desk:
    def __init__(self, config: Config, remediator, api, clock: Callable[[], float]):
        self.config, self.r, self.api, self.clock = config, remediator, api, clock
        self.allow = config.telegram.commands.allow
        self._strangers: dict[int, float] = {}

    # -- who may -----------------------------------------------------------------------------------------

    def allowed(self, asker: Asker) -> bool:
        """A chat on `allow.chats` (and, when `allow.users` is given, a user on it), or the private chat of a
        user on `allow.users`."""
        if asker.chat in self.allow.chats:
            return not self.allow.users or asker.user in self.allow.users
        return asker.private and asker.user in self.allow.users

    def _stranger(self, asker: Asker, what: str) -> None:
        now = self.clock()
        if now - self._strangers.get(asker.chat, float("-inf")) < STRANGER_EVERY:
            return
        self._strangers[asker.chat] = now
        log.warning("telegram: %s from chat %s, user %s, who may not command botwatch: ignored", what[:40],
                    asker.chat, asker.user)
        self._say(asker.chat, "This bot does not take commands here.")

    # -- one update ----------------------------------------------------------------------------------------

    def handle(self, update: dict) -> None:
        if isinstance(update.get("callback_query"), dict):
            return self._callback(update["callback_query"])
        message = update.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return
        asker = _asker(message.get("chat"), message.get("from"))
        if asker is None or not message["text"].startswith("/"):
            return
        words = message["text"].split()
        command = words[0][1:].split("@", 1)[0].lower()
        if not self.allowed(asker):
            return self._stranger(asker, f"/{command}")
        handler = COMMANDS.get(command)
        if handler is None:
            return self._say(asker.chat, f"No command /{escape(command[:32])}. /help lists them.",
                             message.get("message_id"))
        try:
            outcome, bot, text, buttons = handler(self, asker, words[1:], message)
        except PauseError as err:
            outcome, bot, text, buttons = "refused", "", f"⚠️ {escape(err)}", None
        self._record(asker, bot, f"/{command} {' '.join(words[1:])[:200]}".strip(), outcome)
        self._say(asker.chat, text, message.get("message_id"), buttons)

    def _say(self, chat: int, text: str, reply_to: int | None = None, buttons=None) -> None:
        """The answer, in pieces below Telegram's 4,096 characters (a fleet's /status is longer), cut at lines."""
        pieces = split_message(text, LIMIT - 96)       # room for the tags a cut line leaves open
        try:
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                self.api.send(chat, piece, reply_to if index == 0 else None, buttons if last else None)
        except Exception as err:  # the command is done and recorded; only its answer is lost
            log.error("telegram: the answer to chat %s was not delivered: %s", chat, err)

    def _record(self, asker: Asker, bot: str, what: str, outcome: str) -> None:
        record_command(self.r, bot, what, f"telegram:{asker.name}", outcome)

    def _bot(self, words: list[str], usage: str):
        if not words:
            raise PauseError(f"which bot? {usage}")
        bot = self.config.bot(words[0])
        if bot is None:
            raise PauseError(f"no bot {words[0][:64]!r} in the config ({', '.join(b.name for b in self.config.bots)[:500]})")
        return bot

    # -- the commands: each returns (outcome, bot, answer, buttons) -----------------------------------------

    def help(self, asker: Asker, words: list[str], message: dict):
        return "success", "", HELP, None

    def status(self, asker: Asker, words: list[str], message: dict):
        if words:
            return self._status_of(self._bot(words, "/status BOT"))
        lines, unknown = self._lines()
        rows = []
        for line in lines:
            held, last = self.r.pauses.holding(line.bot), self._actions(line.bot, 1)
            rows.append(f"{_state_icon(line, held)} <b>{escape(line.bot)}</b> {escape(_state(line, held))} · 24 h "
                        f"{_pct(line.uptime)} · P&amp;L {_money(line.pnl)}"
                        + (f" · last: {escape(last[0].playbook)} {escape(last[0].outcome or last[0].state)}" if last else ""))
        return "success", "", "\n".join(["<b>botwatch status</b>", *rows, *(f"⚠️ {escape(u)}" for u in unknown)]), None

    def _status_of(self, bot):
        [line], unknown = self._lines([bot.name])
        held = self.r.pauses.holding(bot.name)
        state = self.r.ledger.bot_state(bot.name)
        incidents = self.r.ledger.open_incidents(bot.name)
        actions = self._actions(bot.name, 5)
        text = [f"{_state_icon(line, held)} <b>{escape(bot.name)}</b> on {escape(bot.host)}: {escape(_state(line, held))}",
                f"data file: {_valid(line.valid)} · 24 h uptime {_pct(line.uptime)} · P&amp;L {_money(line.pnl)}",
                f"restarts: {state.attempts} of {self.config.remediation.restarts}"
                f"{' · circuit OPEN' if state.circuit_open else ''}"]
        if held:
            text.append(f"⏸ {escape(self.r.pauses.says(held))}")
        text.append("open incidents: " + (", ".join(escape(name) for name in incidents) if incidents else "none"))
        text.append("positions: " + (", ".join(f"{escape(s)} {q:g}" for s, q in line.positions.items())
                                      if line.positions else "none" if line.up is not None else "unknown"))
        text.append("last actions:" if actions else "last actions: none")
        text += [f"· {hhmm(a.finished_at or a.run_at)} {escape(a.playbook)}: {escape(a.outcome or a.state)}"
                 for a in actions]
        text += [f"⚠️ {escape(u)}" for u in unknown]
        return "success", bot.name, "\n".join(text), None

    def pause(self, asker: Asker, words: list[str], message: dict):
        bot = self._bot(words, "/pause BOT [2h] [reason]")
        rest, until = words[1:], None
        if rest and _duration(rest[0]) is not None:
            until = self.clock() + _duration(rest[0])
            rest = rest[1:]
        reason = " ".join(rest)[:300] or "paused from Telegram"
        [made] = self.r.pauses.pause(Scope((bot.name,)), until, reason, f"telegram:{asker.name}")
        return "success", bot.name, f"⏸ {escape(bot.name)}: {escape(self.r.pauses.says(made))}", None

    def resume(self, asker: Asker, words: list[str], message: dict):
        bot = self._bot(words, "/resume BOT")
        ended = self.r.pauses.resume(Scope((bot.name,)), f"telegram:{asker.name}")
        if not ended:
            return "noop", bot.name, f"{escape(bot.name)} was not paused.", None
        return "success", bot.name, f"▶️ {escape(bot.name)} is botwatch's again.", None

    def reset(self, asker: Asker, words: list[str], message: dict):
        bot = self._bot(words, "/reset BOT")
        self.r.intake.reset(bot.name)
        return "success", bot.name, f"{escape(bot.name)}: circuit closed, restart count reset.", None

    def report(self, asker: Asker, words: list[str], message: dict):
        sent = self.r.periodic.send_report()
        return (("success", "", "Today's report is sent to botwatch's chats.", None) if sent else
                ("failed", "", "⚠️ The report could not be built or sent: see the operations log.", None))

    def restart(self, asker: Asker, words: list[str], message: dict):
        bot = self._bot(words, "/restart BOT")
        nonce = secrets.token_hex(8)
        self.r.ledger.put(_confirm_key(nonce), {"bot": bot.name, "chat": asker.chat, "user": asker.user,
                                                "until": self.clock() + CONFIRM_WITHIN})
        return ("asked", bot.name, f"Restart <b>{escape(bot.name)}</b>? It goes through its playbook: a bot that is up "
                f"is left alone, and backoff, circuit and pauses apply.",
                [(f"Restart {bot.name}", f"restart:{nonce}"), ("Cancel", f"cancel:{nonce}")])

    def ack(self, asker: Asker, words: list[str], message: dict):
        """Silence the alert a notice is about (the notice replied to) until it resolves."""
        replied = message.get("reply_to_message")
        text = replied.get("text") if isinstance(replied, dict) else None
        if not isinstance(text, str):
            raise PauseError("reply with /ack to the alert's message")
        found = NOTICE.match(text)
        if found is None or found.group("alertname") not in alert_names():
            raise PauseError("that message is not one of Alertmanager's alerts: nothing to silence")
        labels = {"alertname": found.group("alertname")}
        bot = self.config.bot(found.group("bot")) if found.group("bot") else None
        if found.group("bot") and bot is None:
            raise PauseError(f"no bot {found.group('bot')[:64]!r} in the config")
        if bot is not None:
            labels["bot"] = bot.name
        what = " · ".join(labels.values())
        if found.group("status") != "FIRING":
            return "noop", labels.get("bot", ""), f"{escape(what)} has resolved: nothing to silence.", None
        try:
            silence = self.r.acks.ack(labels, f"telegram:{asker.name}")
        except SilenceError as err:
            raise PauseError(f"Alertmanager did not take the silence: {err}") from None
        return ("success", labels.get("bot", ""), f"🔕 {escape(what)} acknowledged: silenced until it resolves "
                f"(silence {escape(silence[:8])}).", None)

    # -- the restart's button ----------------------------------------------------------------------------------

    def _callback(self, query: dict) -> None:
        message = query.get("message") if isinstance(query.get("message"), dict) else {}
        asker = _asker(message.get("chat"), query.get("from"))
        data, query_id = query.get("data"), query.get("id")
        if asker is None or not isinstance(data, str) or not isinstance(query_id, str):
            return
        if not self.allowed(asker):
            return self._stranger(asker, "a button")
        verb, _, nonce = data.partition(":")
        key = _confirm_key(nonce[:32])
        asked = self.r.ledger.get(key) if verb in ("restart", "cancel") else None
        if not asked or asked.get("chat") != asker.chat or asked.get("user") != asker.user:
            return self._answer(query_id, "This button is not yours or no longer valid.")
        self.r.ledger.put(key, None)
        bot = self.config.bot(asked["bot"])
        if verb == "cancel" or bot is None:
            self._record(asker, asked["bot"], "/restart cancelled", "cancelled")
            return self._done(query_id, asker, message, f"Restart of {escape(asked['bot'])} cancelled.")
        if self.clock() > asked["until"]:
            self._record(asker, bot.name, "/restart confirmed too late", "expired")
            return self._done(query_id, asker, message, f"Not restarted: confirmed after {CONFIRM_WITHIN / 60:.0f} "
                              f"minutes. Ask again with /restart {escape(bot.name)}.")
        schedule_restart(self.r, bot, asker.name, "in Telegram")
        self._record(asker, bot.name, "/restart confirmed", "scheduled")
        self._done(query_id, asker, message, f"🔄 Restart of <b>{escape(bot.name)}</b> scheduled: its outcome follows "
                   "as every restart's does.")

    def _answer(self, query_id: str, text: str) -> None:
        try:
            self.api.answer_callback(query_id, text)
        except Exception as err:
            log.error("telegram: answerCallbackQuery failed: %s", err)

    def _done(self, query_id: str, asker: Asker, message: dict, text: str) -> None:
        self._answer(query_id, "done")
        if isinstance(message.get("message_id"), int):
            try:
                self.api.edit(asker.chat, message["message_id"], text)
                return
            except Exception as err:
                log.error("telegram: editMessageText failed: %s", err)
        self._say(asker.chat, text)

    # -- what a status says ----------------------------------------------------------------------------------

    def _lines(self, bots: list[str] | None = None):
        prom = PrometheusAPI(self.config.report.prometheus_url, timeout=5.0)
        lines, unknown = collect(self.config, prom, self.r.ledger, 86400.0, self.clock())
        return [line for line in lines if bots is None or line.bot in bots], unknown

    def _actions(self, bot: str, n: int) -> list:
        """The bot's last `n` actions, the commands about it left out."""
        return [a for a in self.r.ledger.actions(bot=bot, limit=n + 25) if a.playbook != "command"][:n]


COMMANDS: dict[str, Callable] = {"help": Desk.help, "start": Desk.help, "status": Desk.status, "pause": Desk.pause,
                                 "resume": Desk.resume, "reset": Desk.reset, "restart": Desk.restart,
                                 "report": Desk.report, "ack": Desk.ack}
# an alert's notice as Telegram gives it back (plain text of botwatch's telegram.tmpl): "🔥 FIRING Name · bot"
NOTICE = re.compile(r"^\S*\s*(?P<status>FIRING|RESOLVED)\s+(?P<alertname>[A-Za-z_][A-Za-z0-9_]*)"
                    r"(?:\s+·\s+(?P<bot>[^\s·]+))?")


@functools.cache
def alert_names() -> frozenset[str]:
    return frozenset(rule["alert"] for rule in mixin.alert_rules(mixin.CONFIG))


def _asker(chat, user) -> Asker | None:
    if not isinstance(chat, dict) or not isinstance(user, dict):
        return None
    chat_id, user_id = chat.get("id"), user.get("id")
    if not isinstance(chat_id, int) or not isinstance(user_id, int) or isinstance(chat_id, bool):
        return None
    name = user.get("username")
    name = f"@{name[:64]}" if isinstance(name, str) and name else str(user_id)
    return Asker(chat_id, user_id, name, chat.get("type") == "private" and chat_id == user_id)


def _confirm_key(nonce: str) -> str:
    return f"telegram-confirm:{nonce}"


def _duration(word: str) -> float | None:
    try:
        seconds = parse_duration(word)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _state(line, held) -> str:
    if held is not None:
        return "stopped by its operator" if held.reason == "operator_stop" else (
            "in maintenance" if held.reason == "maintenance" else "paused")
    return {None: "unknown", 1.0: "up", 0.0: "down"}.get(line.up, "unknown")


def _state_icon(line, held) -> str:
    if held is not None:
        return "⏹" if held.reason == "operator_stop" else "⏸"
    return {1.0: "🟢", 0.0: "🔴"}.get(line.up, "⚪")


def _pct(value) -> str:
    return "?" if value is None else f"{value * 100:.1f}%"


def _money(value) -> str:
    return "?" if value is None else f"{value:+,.2f}"


def _valid(value) -> str:
    return {1.0: "valid", 0.0: "INVALID"}.get(value, "unknown")

