"""Telegram commands, through a stand-in that answers the Bot API's shapes (getUpdates long polling with
offset and timeout, sendMessage with an inline keyboard, answerCallbackQuery, editMessageText, 409 for a
second poller), against a real Alertmanager 0.25 for what a pause does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from botwatch.core.config import config_from_mapping
from tests.conftest import free_port, http_get, wait_for
from tests.remediator.conftest import RecordingRuntime
from tests.remediator.test_intent import am_cluster, silences  # noqa: F401  (a fixture, used by name)
from tests.telegram_standin import TelegramStandIn

pytestmark = pytest.mark.slow

ANA = 42            # allowed: her private chat
EVE = 666           # not on the list


@pytest.fixture
def telegram():
    stand_in = TelegramStandIn()
    yield stand_in
    stand_in.close()


def commands_config(tmp_path, telegram_url: str, am_urls: list[str], bots=("doge-long",), **commands):
    (tmp_path / "tg_token").write_text("123456:TEST-token\n")
    return config_from_mapping({
        "bots": [{"name": name, "process_name": f"{name}_bot", "data_file": str(tmp_path / f"{name}.csv")}
                 for name in bots],
        "remediation": {"verify_after": "0s", "alertmanager_urls": am_urls},
        "report": {"enabled": False, "prometheus_url": "http://127.0.0.1:9"},
        "telegram": {"bot_token_file": "tg_token", "chat_id": 4242, "api_url": telegram_url,
                     "commands": {"enabled": True, "allow": {"users": [ANA]}, "poll_timeout": "2s", **commands}}},
        base=tmp_path)


def engine_for(engine_factory, config):
    runtimes = {}

    def runtime(bot):
        runtimes[bot.name] = RecordingRuntime(bot, up=False)
        return runtimes[bot.name]
    engine = engine_factory(config, runtime_factory=runtime)
    engine.start()
    return engine, runtimes


def answers(telegram, chat: int = ANA) -> list[dict]:
    return [m for m in telegram.messages() if int(m["chat_id"]) == chat]


def answer_to(telegram, text: str, chat: int = ANA, reply_to: str | None = None) -> dict:
    """Say `text` and wait for the bot's next answer in that chat."""
    seen = len(answers(telegram, chat))
    telegram.say(text, chat=chat, user=chat, reply_to=reply_to)
    wait_for(lambda: len(answers(telegram, chat)) > seen, timeout=20, what=f"an answer to {text!r}")
    return answers(telegram, chat)[seen]


def commands_in_ledger(engine) -> list:
    return [a for a in engine.ledger.actions(limit=100) if a.playbook == "command"]


def test_commands_from_an_allowed_chat_do_what_they_say(tmp_path, telegram, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, runtimes = engine_for(engine_factory, commands_config(tmp_path, telegram.url, [am]))

    assert "/pause BOT" in answer_to(telegram, "/help")["text"]

    said = answer_to(telegram, "/pause doge-long 2h strategy change")
    assert "paused by telegram:@ana" in said["text"] and "strategy change" in said["text"]
    [silence] = silences(am)
    assert {"name": "bot", "value": "doge-long", "isRegex": False, "isEqual": True} in silence["matchers"]
    assert engine.pauses.holding("doge-long") is not None

    status = answer_to(telegram, "/status")["text"]
    assert "doge-long" in status and "paused" in status
    assert "Prometheus" in status            # not reachable here: said, not guessed
    assert "open incidents: none" in answer_to(telegram, "/status doge-long")["text"]

    assert "is botwatch's again" in answer_to(telegram, "/resume doge-long")["text"]
    assert silences(am) == [] and engine.pauses.holding("doge-long") is None
    assert "was not paused" in answer_to(telegram, "/resume doge-long")["text"]

    engine.ledger.update_bot("doge-long", attempts=3, circuit_open=1)
    assert "circuit closed" in answer_to(telegram, "/reset doge-long")["text"]
    assert not engine.ledger.bot_state("doge-long").circuit_open

    # a restart asks first; the button runs it through the restart playbook (the bot is down: restarted)
    asked = answer_to(telegram, "/restart doge-long")
    [[go, cancel]] = asked["reply_markup"]["inline_keyboard"]
    assert go["text"] == "Restart doge-long" and cancel["text"] == "Cancel"
    assert runtimes["doge-long"].calls == []
    telegram.press(asked, go["callback_data"])
    wait_for(lambda: runtimes["doge-long"].calls == ["restart"], timeout=20, what="the confirmed restart")
    wait_for(lambda: any(r["method"] == "editMessageText" and "scheduled" in r["data"]["text"]
                         for r in telegram.requests), timeout=10, what="the question edited into the answer")
    telegram.press(asked, go["callback_data"])          # the same button again: spent
    wait_for(lambda: sum(r["method"] == "answerCallbackQuery" for r in telegram.requests) == 2, timeout=10,
             what="the second press answered")
    assert runtimes["doge-long"].calls == ["restart"]

    assert "No command /frobnicate" in answer_to(telegram, "/frobnicate")["text"]
    assert "no bot 'nosuch'" in answer_to(telegram, "/pause nosuch")["text"]

    recorded = {a.detail.split(" by ")[0]: a.outcome for a in commands_in_ledger(engine)}
    assert recorded["/pause doge-long 2h strategy change"] == "success"
    assert recorded["/restart doge-long"] == "asked" and recorded["/restart confirmed"] == "scheduled"
    assert recorded["/pause nosuch"] == "refused"
    assert all(a.detail.endswith("by telegram:@ana") for a in commands_in_ledger(engine))
    opslog = (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    assert "/restart confirmed by telegram:@ana" in opslog
    assert telegram.errors == []


def test_a_stranger_learns_nothing_and_changes_nothing(tmp_path, telegram, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, runtimes = engine_for(engine_factory, commands_config(tmp_path, telegram.url, [am]))
    for text in ("/status", "/pause doge-long", "/restart doge-long", "/status doge-long", "/help"):
        telegram.say(text, chat=EVE, user=EVE, username="eve")
    # ana in a group chat that is not on the list: not a private chat, not an allowed chat
    telegram.say("/pause doge-long", chat=-100, user=ANA, chat_type="group")
    wait_for(lambda: not telegram.updates and telegram.polls >= 2, timeout=20, what="every update taken")
    answer_to(telegram, "/help")           # ana, privately: answered, so the ones before were read too
    strangers = answers(telegram, EVE) + answers(telegram, -100)
    assert len(answers(telegram, EVE)) == 1 and len(answers(telegram, -100)) == 1   # one generic answer a chat
    assert all("doge-long" not in m["text"] and "botwatch" not in m["text"] for m in strangers)
    assert engine.pauses.holding("doge-long") is None and silences(am) == []
    assert runtimes["doge-long"].calls == [] and commands_in_ledger(engine)[0].detail.startswith("/help")
    assert len(commands_in_ledger(engine)) == 1


def test_an_update_is_handled_once_across_a_restart(tmp_path, telegram, am_cluster, engine_factory):
    """The update's id is in the ledger before it is acted on: Telegram sending it again (as it does until a
    later getUpdates confirms it, e.g. after a crash right after taking it) to the next remediator acts not."""
    from botwatch.remediator.talk.poller import OFFSET_KEY
    [am] = am_cluster(1)
    config = commands_config(tmp_path, telegram.url, [am])
    first, _ = engine_for(engine_factory, config)
    answer_to(telegram, "/pause doge-long 1h first")
    first.stop()
    with telegram._changed:
        telegram.updates.insert(0, {"update_id": first.ledger.get(OFFSET_KEY), "message": {
            "message_id": 1, "date": 0, "text": "/pause doge-long 1h first", "chat": {"id": ANA, "type": "private"},
            "from": {"id": ANA, "is_bot": False, "first_name": "ana", "username": "ana"}}})
    second, _ = engine_for(engine_factory, config)
    answer_to(telegram, "/help")
    assert [a.detail.split(" by ")[0] for a in commands_in_ledger(second)] == ["/help", "/pause doge-long 1h first"]
    assert len(silences(am)) == 1


def test_an_update_already_taken_or_taken_after_the_lease_moved_is_not_acted_on(tmp_path):
    """What keeps an update from being handled twice, each on its own: its id recorded before it is acted on
    (a poll that returns it again acts not), and the lease checked in the same transaction (a poll that was
    in flight when another replica took the lease over acts on nothing it returns)."""
    import time

    from botwatch.remediator.ledger import Ledger
    from botwatch.remediator.talk.poller import LEASE_KEY, Poller

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    handled, returns = [], []

    class Api:                       # a Bot API that ignores the offset, and may see the lease move meanwhile
        def updates(self, offset, timeout):
            batch, moved = returns.pop(0)
            if moved:
                ledger.put(LEASE_KEY, {"worker": "the-other", "until": time.time() + 60})
            return [{"update_id": n} for n in batch]

    poller = Poller(Api(), lambda update: handled.append(update["update_id"]), ledger, "this-one", 2)
    returns.extend([([5, 6], False), ([5, 6, 7], False), ([8], True)])
    poller.step()
    poller.step()
    assert handled == [5, 6, 7]
    poller.step()
    assert handled == [5, 6, 7]
    assert poller.step() > 0 and not poller.holding       # the other holds it now: this one waits
    ledger.close()


def test_of_two_remediators_on_one_ledger_one_polls_and_the_other_takes_over_when_it_is_killed(
        tmp_path, telegram, postgres_url):
    """Telegram answers a second poller 409: the replicas take turns through the ledger's lease. Killed with
    SIGKILL (no hand-over), the holder's lease runs out and the other answers the next command."""
    from botwatch.remediator.ledger import Ledger
    from botwatch.remediator.talk.poller import LEASE_FOR, LEASE_KEY
    (tmp_path / "tg_token").write_text("123456:TEST-token\n")
    (tmp_path / "token").write_text("webhook-token\n")
    (tmp_path / "bots.json").write_text(json.dumps({
        "bots": [{"name": "doge-long", "process_name": "doge_long_bot", "data_file": str(tmp_path / "d.csv")}],
        "report": {"enabled": False, "prometheus_url": "http://127.0.0.1:9"},
        "remediation": {"alertmanager_urls": ["http://127.0.0.1:9"]},
        "telegram": {"bot_token_file": str(tmp_path / "tg_token"), "chat_id": 4242, "api_url": telegram.url,
                     "commands": {"enabled": True, "allow": {"users": [ANA]}, "poll_timeout": "2s"}}}))
    ports, replicas = [free_port(), free_port()], []
    ledger = Ledger(postgres_url)
    try:
        for index, port in enumerate(ports):
            replicas.append(subprocess.Popen(
                [sys.executable, "-m", "botwatch", "remediator", "--config", str(tmp_path / "bots.json"),
                 "--listen", f"127.0.0.1:{port}", "--token-file", str(tmp_path / "token"), "--ledger", postgres_url],
                env={**os.environ, "BOTWATCH_DATA_DIR": str(tmp_path / f"var{index}")},
                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"remediator{index}.log", "wb")))
        for port in ports:
            wait_for(lambda port=port: http_get(f"http://127.0.0.1:{port}/-/healthy"), timeout=30, what="a replica")
        polls = telegram.polls
        wait_for(lambda: telegram.polls >= polls + 4, timeout=30, what="polls")     # 2 s each: several rounds
        assert telegram.conflicts == 0                      # one poller at a time
        holder = ledger.get(LEASE_KEY)["worker"]
        [killed] = [index for index, port in enumerate(ports) if f":{port}/" in holder]
        assert "/help" in answer_to(telegram, "/help")["text"]

        replicas[killed].send_signal(signal.SIGKILL)
        replicas[killed].wait(timeout=10)
        seen = len(answers(telegram))
        telegram.say("/status", chat=ANA, user=ANA)
        wait_for(lambda: len(answers(telegram)) > seen, timeout=LEASE_FOR + 45, what="the other replica answering")
        assert "doge-long" in answers(telegram)[seen]["text"]
        assert f":{ports[1 - killed]}/" in ledger.get(LEASE_KEY)["worker"]
        assert telegram.errors == []
    finally:
        for replica in replicas:
            replica.kill()
            replica.wait(timeout=10)
        ledger.close()


def test_ack_as_a_reply_to_an_alert_silences_it_until_it_resolves(tmp_path, telegram, am_cluster, engine_factory):
    """/ack replying to Alertmanager's notice: a silence on that alert (its name and bot), which botwatch ends
    once Alertmanager holds the alert no more, not at a time guessed in advance."""
    from datetime import datetime, timedelta, timezone
    [am] = am_cluster(1)
    engine, _ = engine_for(engine_factory, commands_config(tmp_path, telegram.url, [am]))
    labels = {"alertname": "TradingBotDownCritical", "bot": "doge-long", "severity": "critical"}

    def post_alert(ends: datetime) -> None:
        request = urllib.request.Request(f"{am}/api/v2/alerts", method="POST", headers={"Content-Type": "application/json"},
                                         data=json.dumps([{"labels": labels, "endsAt": ends.isoformat()}]).encode())
        urllib.request.urlopen(request, timeout=10).read()

    post_alert(datetime.now(timezone.utc) + timedelta(hours=1))
    notice = "🔥 FIRING TradingBotDownCritical · doge-long\nA trading bot has been down for more than 5 minutes.\n" \
             "bot: doge-long · severity: critical · runbook"
    assert "reply with /ack" in answer_to(telegram, "/ack")["text"]
    assert "not one of Alertmanager's alerts" in answer_to(
        telegram, "/ack", reply_to="🔧 doge-long was down; restarted and verified up in 0s (attempt 1/4).")["text"]
    assert "acknowledged: silenced until it resolves" in answer_to(telegram, "/ack", reply_to=notice)["text"]
    [silence] = silences(am)
    assert sorted((m["name"], m["value"]) for m in silence["matchers"]) == [
        ("alertname", "TradingBotDownCritical"), ("bot", "doge-long")]
    wait_for(lambda: json.loads(http_get(f"{am}/api/v2/alerts?silenced=true"))[0]["status"]["silencedBy"]
             == [silence["id"]], timeout=10, what="the alert silenced")

    engine.upkeep()                       # still firing: the silence stays
    assert [s["id"] for s in silences(am)] == [silence["id"]]
    post_alert(datetime.now(timezone.utc) - timedelta(seconds=1))          # resolved
    wait_for(lambda: (engine.upkeep(), silences(am))[1] == [], timeout=20, what="the silence ended with the alert")
    assert "its silence ended" in (tmp_path / "data" / "memory" / "bot-operations.md").read_text()


def test_a_fleet_s_status_comes_in_pieces_telegram_takes(tmp_path, telegram, engine_factory):
    """Telegram refuses a message over 4,096 characters: /status for 120 bots is cut at lines into several."""
    names = [f"bot-with-a-rather-long-name-{n:03d}" for n in range(120)]
    engine, _ = engine_for(engine_factory, commands_config(tmp_path, telegram.url, ["http://127.0.0.1:9"], bots=names))
    answer_to(telegram, "/status")
    wait_for(lambda: "⚠️" in answers(telegram)[-1]["text"], timeout=20, what="the last piece")
    pieces = answers(telegram)
    assert len(pieces) >= 2 and all(len(p["text"]) <= 4096 for p in pieces)
    assert all(any(f"<b>{name}</b>" in p["text"] for p in pieces) for name in names)
    assert telegram.errors == []
