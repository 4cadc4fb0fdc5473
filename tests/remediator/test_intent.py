"""Operator intent against a real Alertmanager 0.25: a pause is a silence by botwatch plus a hold every
playbook reads first; resume ends both; a silence expired in Alertmanager's UI ends the pause; maintenance
windows become one silence per occurrence, visible on both peers of a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone

import pytest

from botwatch.core.config import config_from_mapping
from botwatch.remediator import agent_tokens
from tests.conftest import Daemons, free_port, http_get, wait_for
from tests.remediator.conftest import (TOKEN, page_text, FakeClock, RecordingRuntime, alert, client_for, make_config,
                                       outbox_texts, payload, post)

pytestmark = pytest.mark.slow
BOTH_LEDGERS = True     # the pauses table and its unique occurrence key, on SQLite and on PostgreSQL

AM_CONFIG = """
route: {receiver: "null", group_wait: 1s, group_interval: 1s}
receivers: [{name: "null"}]
"""


@pytest.fixture
def am_cluster(tmp_path):
    """start(n) runs n Alertmanager peers gossiping on 127.0.0.1; their URLs."""
    daemons = Daemons(tmp_path)

    def start(n: int = 1) -> list[str]:
        gossip = [free_port() for _ in range(n)]
        urls = []
        for index in range(n):
            peers = [f"--cluster.peer=127.0.0.1:{port}" for j, port in enumerate(gossip) if j != index]
            cluster = [f"--cluster.listen-address=127.0.0.1:{gossip[index]}", "--cluster.peer-timeout=2s",
                       "--cluster.gossip-interval=50ms", "--cluster.pushpull-interval=1s", *peers] if n > 1 \
                else ["--cluster.listen-address="]
            urls.append(daemons.start("prometheus-alertmanager", "alertmanager.yml", AM_CONFIG,
                                      lambda folder, c=cluster: [f"--storage.path={folder / 'data'}", *c]))
        return urls

    yield start
    daemons.stop()


def silences(url: str, state: str = "active") -> list[dict]:
    return [s for s in json.loads(http_get(f"{url}/api/v2/silences"))
            if s["status"]["state"] == state and s["createdBy"] == "botwatch"]


def call(client, method: str, path: str, body=None, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = getattr(client, method)(path, json=body, headers=headers)
    return response.status_code, response.get_json()


def engine_with(engine_factory, tmp_path, am_urls, bots=("doge-long",), up=False, **kwargs):
    config = make_config(tmp_path, [{"name": name, "process_name": f"{name}_bot", "data_file": str(tmp_path / f"{name}.csv")}
                                    for name in bots], alertmanager_urls=am_urls)
    runtimes = {}

    def runtime(bot):
        runtimes[bot.name] = RecordingRuntime(bot, up=up)
        return runtimes[bot.name]
    engine = engine_factory(config, runtime_factory=runtime, **kwargs)
    return engine, runtimes


def test_a_pause_is_a_silence_by_botwatch_and_a_hold_no_playbook_passes_until_resumed(
        tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, runtimes = engine_with(engine_factory, tmp_path, [am])
    client = client_for(engine)
    code, answer = call(client, "post", "/pause", {"bots": ["doge-long"], "for": "2h", "reason": "strategy change",
                                                   "who": "ana@desk"})
    assert code == 200, answer
    [silence] = silences(am)
    assert silence["matchers"] == [{"name": "bot", "value": "doge-long", "isRegex": False, "isEqual": True}]
    assert "strategy change" in silence["comment"]
    ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00")).timestamp()
    assert 7000 < ends - engine.clock() <= 7200
    assert [p["bots"] for p in call(client, "get", "/pauses")[1]["pauses"]] == [["doge-long"]]

    # an alert that still arrives (a webhook replayed by hand, a race with the silence) is held: nothing touched
    post(client, payload(alert("doge-long")))
    engine.runner.dispatch_due(inline=True)
    [held] = [a for a in engine.ledger.actions(bot="doge-long") if a.playbook == "restart"]
    assert held.outcome == "held" and "paused by ana@desk" in held.detail and "strategy change" in held.detail
    assert runtimes["doge-long"].calls == []
    assert "held" in (tmp_path / "data" / "memory" / "bot-operations.md").read_text()

    # resume: the silence ends with it, and the next copy of the same incident acts (held is not acted on)
    code, answer = call(client, "post", "/resume", {"bots": ["doge-long"], "who": "ana@desk"})
    assert code == 200 and len(answer["ended"]) == 1
    assert silences(am) == [] and len(silences(am, "expired")) == 1
    assert call(client, "get", "/pauses")[1]["pauses"] == []
    post(client, payload(alert("doge-long")))
    engine.runner.dispatch_due(inline=True)
    assert runtimes["doge-long"].calls == ["restart"]
    assert any("paused" in text for text in wait_for(lambda: outbox_texts(tmp_path), what="the pause notice"))


def test_a_job_queued_for_a_bot_that_gets_paused_is_cancelled_not_run_later(tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    clock = FakeClock()
    engine, runtimes = engine_with(engine_factory, tmp_path, [am], clock=clock)
    engine.ledger.schedule("doge-long", "restart", clock() + 300, "TradingBotDown", detail="backoff")
    call(client_for(engine), "post", "/pause", {"bots": ["doge-long"], "reason": "vacation"})
    clock.now += 600
    engine.runner.dispatch_due(inline=True)
    [job] = [a for a in engine.ledger.actions(bot="doge-long") if a.playbook == "restart"]
    assert job.outcome == "cancelled" and "paused" in job.detail
    assert runtimes["doge-long"].calls == []


def test_a_silence_expired_in_alertmanagers_ui_ends_the_pause_and_one_that_runs_out_ends_it_too(
        tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    clock = FakeClock(datetime.now(timezone.utc).timestamp())
    engine, _ = engine_with(engine_factory, tmp_path, [am], bots=("doge-long", "eth-mm"), clock=clock)
    client = client_for(engine)
    call(client, "post", "/pause", {"bots": ["doge-long"], "reason": "by hand"})
    call(client, "post", "/pause", {"bots": ["eth-mm"], "for": "10m", "reason": "short"})
    [silence] = [s for s in silences(am) if "by hand" in s["comment"]]
    urllib.request.urlopen(urllib.request.Request(f"{am}/api/v2/silence/{silence['id']}", method="DELETE"), timeout=5)
    engine.upkeep()
    assert [p.target for p in engine.pauses.active()] == ["eth-mm"]
    clock.now += 601
    engine.upkeep()
    assert engine.pauses.active() == []
    ended = [a.detail for a in engine.ledger.actions() if a.playbook == "resume"]
    assert any("expired in Alertmanager" in d for d in ended) and any("time ran out" in d for d in ended)


def test_pause_refuses_what_it_cannot_do_with_a_sentence_and_changes_nothing(tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, _ = engine_with(engine_factory, tmp_path, [am])
    client = client_for(engine)
    for body, words in (({"bots": ["nope"], "reason": "x"}, "no bot 'nope'"),
                        ({"bots": ["doge-long"], "for": "2 hours", "reason": "x"}, "--for"),
                        ({"bots": ["doge-long"], "for": "2h"}, "--reason"),
                        ({"reason": "x"}, "exactly one"),
                        ({"bots": ["doge-long"], "until": "2020-01-01T00:00", "reason": "x"}, "in the past")):
        code, answer = call(client, "post", "/pause", body)
        assert code == 400 and words in answer["error"], (body, answer)
    assert call(client, "post", "/pause", {"bots": ["doge-long"], "reason": "x"}, token="wrong")[0] == 401
    assert engine.pauses.active() == [] and silences(am) == []


def test_a_pause_made_while_alertmanager_is_away_holds_at_once_and_gets_its_silence_later(
        tmp_path, am_cluster, engine_factory):
    port = free_port()
    engine, runtimes = engine_with(engine_factory, tmp_path, [f"http://127.0.0.1:{port}"])
    call(client_for(engine), "post", "/pause", {"bots": ["doge-long"], "reason": "away"})
    [pause] = engine.pauses.active()
    assert pause.silence_id is None                              # no Alertmanager: the hold stands alone
    [am] = am_cluster(1)
    engine.pauses.silences.urls = [am]
    engine.upkeep()
    [pause] = engine.pauses.active()
    assert pause.silence_id and [s["id"] for s in silences(am)] == [pause.silence_id]


def test_a_maintenance_window_by_cron_is_one_silence_per_occurrence_on_both_peers_announced_once(
        tmp_path, am_cluster, engine_factory, ledger_target):
    """A weekly window in Europe/Berlin for 30 minutes (its minute is this one, so the silence Alertmanager
    gets is active by its own clock; the remediators' clocks are fake and step through the schedule); an HA
    pair of remediators on one ledger, each asking its own Alertmanager peer: one pause, one silence, seen on
    both peers; its start and its end each told once."""
    from zoneinfo import ZoneInfo
    urls = am_cluster(2)
    berlin = datetime.now(ZoneInfo("Europe/Berlin")).replace(second=0, microsecond=0)
    start = berlin.timestamp()
    cron = f"{berlin.minute} {berlin.hour} * * {berlin.isoweekday() % 7}"
    raw = {"bots": [{"name": "doge-long", "process_name": "x", "data_file": str(tmp_path / "d.csv")},
                    {"name": "eth-mm", "process_name": "y", "data_file": str(tmp_path / "e.csv")}],
           "remediation": {"alertmanager_urls": urls[:1]}, "report": {"enabled": False},
           "maintenance": [{"name": "weekly upgrade", "bots": ["doge-long", "eth-mm"], "cron": cron,
                            "duration": "30m", "timezone": "Europe/Berlin"}]}
    engines = []
    for index in range(2):
        raw["remediation"]["alertmanager_urls"] = [urls[index]]
        clock = FakeClock(start - 120)
        engine = engine_factory(config_from_mapping(raw, base=tmp_path), clock=clock, data_dir=tmp_path / f"r{index}",
                                ledger=ledger_target or tmp_path / "shared.sqlite3",
                                runtime_factory=lambda bot: RecordingRuntime(bot))
        engines.append((engine, clock))
    for engine, clock in engines:
        engine.upkeep()
        assert engine.pauses.active() == []                       # two minutes before: not yet
    for engine, clock in engines:
        clock.now = start + 5
        engine.upkeep()
        engine.upkeep()                                           # again: the same occurrence, nothing new
    for url in urls:
        found = wait_for(lambda u=url: silences(u), what=f"the maintenance silence on {url}")
        assert len(found) == 1, found
        assert found[0]["matchers"] == [{"name": "bot", "value": "doge-long|eth-mm", "isRegex": True, "isEqual": True}]
        assert "weekly upgrade" in found[0]["comment"]
    for engine, clock in engines:
        [pause] = engine.pauses.active()             # the same one: the ledger's unique occurrence
        assert pause.reason == "maintenance" and (pause.since, pause.until) == (start, start + 1800)
        assert engine.pauses.holding("eth-mm") is not None
    engine, clock = engines[0]
    post(client_for(engine), payload(alert("eth-mm")))
    engine.runner.dispatch_due(inline=True)
    assert engine.ledger.actions(bot="eth-mm")[0].outcome == "held"
    clock.now = start + 1800
    engine.upkeep()
    engine.upkeep()
    assert engine.pauses.active() == []
    told = wait_for(lambda: [t for t in outbox_texts(tmp_path) if "weekly upgrade" in t and "ended" in t],
                    what="the end of maintenance")
    started = [t for t in outbox_texts(tmp_path) if "weekly upgrade" in t and "in maintenance" in t]
    assert len(told) == 1 and len(started) == 1


def test_check_config_validates_maintenance_cron_and_timezone(tmp_path):
    path = tmp_path / "bots.yaml"
    path.write_text("bots:\n  - {name: a, process_name: x, data_file: a.csv}\nmaintenance:\n"
                    "  - {name: w, all: true, cron: '0 3 * * FUNDAY', duration: 30m, timezone: Mars/Olympus}\n"
                    "  - {name: v, bots: [a], cron: '0 3 * *', duration: 30m}\n")
    out = subprocess.run([sys.executable, "-m", "botwatch", "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "maintenance[0].timezone" in out.stderr and "Mars/Olympus" in out.stderr
    assert "maintenance[1]: cron: '0 3 * *': a cron schedule has 5 fields" in out.stderr
    path.write_text("bots:\n  - {name: a, process_name: x, data_file: a.csv}\nmaintenance:\n"
                    "  - {name: w, all: true, cron: '0 3 * * SUN', duration: 30m, timezone: Europe/Berlin}\n")
    out = subprocess.run([sys.executable, "-m", "botwatch", "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_status_page_shows_who_paused_what_until_when_and_why(tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, _ = engine_with(engine_factory, tmp_path, [am])
    client = client_for(engine)
    call(client, "post", "/pause", {"bots": ["doge-long"], "until": "2099-01-01T10:00", "reason": "new <strategy>",
                                    "who": "ana@desk"})
    page = page_text(client)
    assert "paused by ana@desk until 2099-01-01 10:00 UTC: new &lt;strategy&gt;" in page


def test_botwatch_stop_records_the_intent_first_then_stops_and_nothing_starts_it_again(
        tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    engine, runtimes = engine_with(engine_factory, tmp_path, [am], up=True)
    client = client_for(engine)
    code, answer = call(client, "post", "/stop", {"bots": ["doge-long"], "who": "ana@desk"})
    assert code == 200 and answer["bots"] == ["doge-long"]
    assert runtimes["doge-long"].calls == ["stop"]
    [pause] = engine.pauses.active()
    assert (pause.reason, pause.who) == ("operator_stop", "its operator") and "botwatch stop by ana@desk" in pause.comment
    runtimes["doge-long"]._up = False
    post(client, payload(alert("doge-long")))
    engine.runner.dispatch_due(inline=True)
    assert engine.ledger.actions(bot="doge-long")[0].outcome == "held"
    assert runtimes["doge-long"].calls == ["stop"]


def test_a_paused_bot_on_another_host_gets_no_job_and_its_agent_is_told_it_is_paused(
        tmp_path, am_cluster, engine_factory):
    """Fleet: a pause covers a bot wherever it runs. The central remediator ends a job of a paused bot
    `held` instead of handing it to the bot's agent, and tells the agent what is paused (tradingbot_paused)."""
    [am] = am_cluster(1)
    config = make_config(tmp_path, [{"name": "far-bot", "host": "vps-2", "process_name": "x",
                                     "data_file": str(tmp_path / "f.csv")}], alertmanager_urls=[am])
    engine = engine_factory(config, runtime_factory=lambda bot: RecordingRuntime(bot))
    client = client_for(engine)
    engine.ledger.schedule("far-bot", "restart", engine.clock(), "TradingBotDown", host="vps-2")
    call(client, "post", "/pause", {"host": "vps-2", "for": "1h", "reason": "provider maintenance"})
    engine.ledger.schedule("far-bot", "restart", engine.clock(), "TradingBotDown", host="vps-2")
    code, answer = call(client, "post", "/agent/poll", {"host": "vps-2", "address": "10.0.0.2:9817"},
                        token=agent_tokens.issue(engine.ledger, "vps-2", 0.0))
    assert code == 200 and answer["jobs"] == [] and answer["paused"] == {"far-bot": "pause"}
    outcomes = sorted(a.outcome for a in engine.ledger.actions(bot="far-bot") if a.playbook == "restart")
    assert outcomes == ["cancelled", "held"]          # queued before the pause: cancelled; after: held


def test_a_stop_an_agent_saw_on_its_host_becomes_the_bots_hold_and_ends_when_its_agent_sees_it_up(
        tmp_path, am_cluster, engine_factory):
    """Fleet: an agent holds a run for a container its operator stopped (intent.stops.deliberate) and says
    so in the run's end; the central remediator makes that the bot's hold (told once, tradingbot_paused
    through the agent's polls), and ends it when the agent's checks find the bot up again."""
    from botwatch.remediator.intent.stops import OPERATOR_STOP
    [am] = am_cluster(1)
    config = make_config(tmp_path, [{"name": "far-bot", "host": "vps-2", "container": "far-bot",
                                     "data_file": str(tmp_path / "f.csv")}], alertmanager_urls=[am])
    engine = engine_factory(config, runtime_factory=lambda bot: RecordingRuntime(bot))
    client = client_for(engine)
    engine.ledger.schedule("far-bot", "restart", engine.clock(), "TradingBotDown", host="vps-2")
    poll = {"host": "vps-2", "address": "10.0.0.2:9817"}
    token = agent_tokens.issue(engine.ledger, "vps-2", 0.0)
    [job] = call(client, "post", "/agent/poll", poll, token=token)[1]["jobs"]
    code, _ = call(client, "post", f"/agent/jobs/{job['id']}/finish", {
        "host": "vps-2", "attempt": job["attempt"], "outcome": "held",
        "detail": f"{OPERATOR_STOP}docker stop at 10:00:00 UTC; not restarted"}, token=token)
    assert code == 200
    [pause] = engine.pauses.active()
    assert (pause.reason, pause.target, pause.comment) == ("operator_stop", "far-bot", "docker stop at 10:00:00 UTC")
    assert call(client, "post", "/agent/poll", poll, token=token)[1]["paused"] == {"far-bot": "operator_stop"}
    told = wait_for(lambda: [t for t in outbox_texts(tmp_path) if "far-bot" in t], what="the notice")
    assert len(told) == 1 and "stopped by its operator" in told[0]
    call(client, "post", "/agent/poll", {**poll, "up": ["far-bot"]}, token=token)
    assert engine.pauses.active() == []


def test_the_upkeep_running_while_a_pause_is_made_does_not_make_its_silence_twice(tmp_path, am_cluster, engine_factory):
    """The upkeep's sync makes the silences Alertmanager missed: one that runs between a pause's hold and its
    silence (the upkeep runs in the pool, at a remediator's start and every minute) must not make a second."""
    import threading
    [am] = am_cluster(1)
    engine, _ = engine_with(engine_factory, tmp_path, [am])
    create, syncs = engine.pauses.silences.create, []

    def create_while_the_upkeep_runs(*args, **kwargs):
        if not syncs:
            syncs.append(threading.Thread(target=engine.pauses.sync, kwargs={"force": True}))
            syncs[0].start()
            syncs[0].join(timeout=2)      # without the lock it is done by now, with its own silence
        return create(*args, **kwargs)

    engine.pauses.silences.create = create_while_the_upkeep_runs
    code, answer = call(client_for(engine), "post", "/pause", {"bots": ["doge-long"], "for": "1h", "reason": "r"})
    assert code == 200, answer
    syncs[0].join(timeout=10)
    assert not syncs[0].is_alive()
    assert len(silences(am)) == 1
