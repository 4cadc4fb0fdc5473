"""The fast path's remediator side: `POST /death` (and an agent's `/agent/death`) is taken as the bot's
TradingBotDown — one incident, the same restart job — and the TradingBotDown that Prometheus raises for the
same death afterwards is that incident's duplicate, however late its evaluation stamped it."""

import pytest

from botwatch.remediator.actions.intake import down_key
from botwatch.remediator.actions.payload import rfc3339
from botwatch.remediator import agent_tokens
from tests.remediator.conftest import (TOKEN, FakeClock, RecordingRuntime, alert, client_for, make_config, payload,
                                       post, recording_fleet)

BOTH_LEDGERS = True     # every engine test here runs on SQLite and on PostgreSQL


@pytest.fixture
def fleet(tmp_path, engine_factory):
    bots = [{"name": f"bot-{i}", "pidfile": f"bot-{i}.pid", "data_file": f"bot-{i}.csv",
             "start_command": ["true"]} for i in range(3)]
    bots.append({"name": "far-bot", "host": "far", "pidfile": "far.pid", "data_file": "far.csv",
                 "start_command": ["true"]})
    return recording_fleet(tmp_path, engine_factory, bots)


def death(client, bot: str, at: float, token: str = TOKEN, path: str = "/death", **extra):
    return client.post(path, json={"bot": bot, "at": at, "detail": "pid 4242 ended", **extra},
                       headers={"Authorization": f"Bearer {token}"})


def restarts(engine, bot: str) -> list:
    return [a for a in engine.ledger.actions(bot=bot) if a.playbook == "restart"]


def down_alert(bot: str, starts_at: float, down_since: float | None, status: str = "firing") -> dict:
    raw = alert(bot, status=status, starts_at=rfc3339(starts_at), fingerprint="am-fingerprint")
    if down_since is not None:
        raw["annotations"]["down_since"] = f"{down_since:.3f}"
    return raw


def test_a_death_is_a_restart_job_at_once_and_a_second_report_of_it_a_duplicate(fleet):
    engine, client, runtimes, clock = fleet
    died = clock.now - 0.2
    answer = death(client, "bot-1", died)
    assert answer.status_code == 200 and answer.get_json() == {"outcome": "scheduled"}
    [job] = restarts(engine, "bot-1")
    assert job.state == "scheduled" and job.run_at <= clock.now and job.alertname == "TradingBotDown"
    assert job.fingerprint == down_key("bot-1")
    assert death(client, "bot-1", died).get_json() == {"outcome": "duplicate"}     # the exporter's retry
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-1"].calls == ["restart"]


def test_prometheus_alert_for_the_same_death_is_its_duplicate_even_stamped_after_the_restart(fleet):
    """At the shipped 15 s evaluations, TradingBotDown's startsAt can be seconds after the fast path's
    restart ended; its down_since (the exporter's time of the death) says which episode it is."""
    engine, client, runtimes, clock = fleet
    died = clock.now
    death(client, "bot-1", died)
    engine.runner.dispatch_due(inline=True)                   # restarted and verified
    finished = restarts(engine, "bot-1")[0].finished_at
    clock.advance(12)
    late = post(client, payload(down_alert("bot-1", starts_at=finished + 10, down_since=died)))
    assert late.get_json()["duplicate"] == 1
    resolved = post(client, payload(down_alert("bot-1", finished + 10, died, status="resolved")))
    assert resolved.get_json()["resolved"] == 1
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-1"].calls == ["restart"] and len(restarts(engine, "bot-1")) == 1
    notes = [row["note"] for row in engine.ledger._read("SELECT note FROM deliveries WHERE bot = 'bot-1' ORDER BY id")]
    assert notes[0] == "scheduled restart" and notes[1] == "duplicate: already acted on"


def test_a_down_episode_that_began_after_the_restart_is_a_new_incident(fleet):
    engine, client, runtimes, clock = fleet
    death(client, "bot-2", clock.now)
    engine.runner.dispatch_due(inline=True)
    finished = restarts(engine, "bot-2")[0].finished_at
    clock.advance(3600 * 2)
    runtimes["bot-2"]._up = False            # its health endpoint failed later: two checks, then the alert
    began = finished + 3600
    assert post(client, payload(down_alert("bot-2", began + 30, began))).get_json()["scheduled"] == 1
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-2"].calls == ["restart", "restart"]


def test_an_alert_without_down_since_keeps_startsat(fleet):
    """A user's own rules without the annotation: startsAt decides, as before."""
    engine, client, runtimes, clock = fleet
    death(client, "bot-2", clock.now)
    engine.runner.dispatch_due(inline=True)
    finished = restarts(engine, "bot-2")[0].finished_at
    assert post(client, payload(down_alert("bot-2", finished - 0.5, None))).get_json()["duplicate"] == 1


def test_a_death_while_botwatch_restarts_the_bot_is_that_restarts_own(fleet):
    engine, client, runtimes, clock = fleet
    post(client, payload(alert("bot-0", alertname="TradingBotStuck", fingerprint="fp-stuck")))
    [job] = restarts(engine, "bot-0")
    engine.ledger.start(job.id, clock.now)            # running: it stops the frozen process
    assert death(client, "bot-0", clock.now).get_json() == {"outcome": "ignored"}
    assert len(restarts(engine, "bot-0")) == 1


def test_a_paused_bot_that_dies_is_held_not_restarted(fleet):
    engine, client, runtimes, clock = fleet
    from botwatch.remediator.intent.pauses import parse_scope
    engine.pauses.pause(parse_scope(engine.config, ["bot-1"], None, False), clock.now + 3600, "strategy change", "ana")
    assert death(client, "bot-1", clock.now).get_json() == {"outcome": "scheduled"}
    engine.runner.dispatch_due(inline=True)
    [job] = restarts(engine, "bot-1")
    assert job.outcome == "held" and runtimes["bot-1"].calls == []


@pytest.mark.parametrize("body, code, words", [
    ({"bot": "nobody", "at": 1.7e9}, 404, "not in the config"),
    ({"bot": "bot-1; rm -rf /", "at": 1.7e9}, 404, "not in the config"),
    ({"bot": "bot-1", "at": "yesterday"}, 400, "at:"),
    ({"bot": "bot-1", "at": -5}, 400, "at:"),
    ({"bot": "bot-1"}, 400, "at:"),
])
def test_bad_reports_name_what_is_wrong_and_schedule_nothing(fleet, body, code, words):
    engine, client, _, _ = fleet
    answer = client.post("/death", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == code and words in answer.get_json()["error"]
    assert not engine.ledger.actions()


def test_the_token_is_required(fleet):
    engine, client, _, clock = fleet
    assert death(client, "bot-1", clock.now, token="wrong").status_code == 401
    assert not engine.ledger.actions()


def test_an_agent_reports_only_its_own_hosts_bots_and_its_job_is_for_that_host(fleet):
    engine, client, _, clock = fleet
    far = agent_tokens.issue(engine.ledger, "far", 0.0)
    assert death(client, "bot-1", clock.now, far, path="/agent/death", host="far").status_code == 409
    assert death(client, "far-bot", clock.now, path="/agent/death", host="far").status_code == 401   # webhook's
    answer = death(client, "far-bot", clock.now, far, path="/agent/death", host="far")
    assert answer.get_json() == {"outcome": "scheduled"}
    [job] = restarts(engine, "far-bot")
    assert job.host == "far" and job.state == "scheduled"


def test_with_the_fast_path_off_a_report_is_refused_and_the_alert_restarts(tmp_path, engine_factory):
    config = make_config(tmp_path, [{"name": "bot-1", "pidfile": "b.pid", "data_file": "b.csv",
                                     "start_command": ["true"]}], fast_path=False)
    engine = engine_factory(config, clock=FakeClock(), runtime_factory=lambda bot: RecordingRuntime(bot))
    client = client_for(engine)
    answer = death(client, "bot-1", 1.7e9)
    assert answer.status_code == 409 and "fast_path" in answer.get_json()["error"]
    assert not engine.ledger.actions()
