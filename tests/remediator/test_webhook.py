"""POST /alerts: who may call it, what it accepts, and that one incident acts once."""

import json
from datetime import datetime, timezone

import pytest

from botwatch.remediator.actions.intake import down_key
from tests.conftest import wait_for
from botwatch.remediator import agent_tokens
from tests.remediator.conftest import (TOKEN, page_text, FakeClock, alert, client_for, make_config, payload,
                                       post, recording_fleet)

BOTH_LEDGERS = True     # every engine test here runs on SQLite and on PostgreSQL


@pytest.fixture
def fleet(tmp_path, engine_factory):
    bots = [{"name": f"bot-{i}", "pidfile": f"bot-{i}.pid", "data_file": f"bot-{i}.csv",
             "start_command": ["true"]} for i in range(10)]
    return recording_fleet(tmp_path, engine_factory, bots)


def actions(engine):
    return engine.ledger.actions()


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
def test_401_without_the_right_bearer_token(fleet, token):
    engine, client, _, _ = fleet
    response = post(client, payload(alert("bot-1")), token=token)
    assert response.status_code == 401 and "error" in response.get_json()
    assert not actions(engine)


def test_401_for_a_basic_auth_header_carrying_the_token(fleet):
    _, client, _, _ = fleet
    response = client.post("/alerts", data=payload(alert("bot-1")), headers={"Authorization": f"Basic {TOKEN}"})
    assert response.status_code == 401


@pytest.mark.parametrize("body, words", [
    ('{"version":"4","alerts":', "not JSON"),
    ('{"hello": 1}', "version"),
    ('[1, 2]', "object"),
    ('{"version": "3", "alerts": []}', "version"),
    ('{"version": "4", "alerts": {}}', "alerts must be a list"),
    ('{"version": "4", "alerts": [1]}', "alerts[0] must be an object"),
    ('{"version": "4", "alerts": [{"status": "on fire", "labels": {}, "startsAt": "2026-01-01T00:00:00Z"}]}', "status"),
    ('{"version": "4", "alerts": [{"status": "firing", "labels": {"bot": 1}, "startsAt": "2026-01-01T00:00:00Z"}]}',
     "labels"),
    ('{"version": "4", "alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]}', "startsAt"),
    (b'\xff\xfe', "not JSON"),
])
def test_400_with_a_json_error_for_anything_not_a_v4_payload(fleet, body, words):
    engine, client, _, _ = fleet
    response = post(client, body)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert not actions(engine)


def test_413_over_the_size_cap(fleet):
    engine, client, _, _ = fleet
    huge = payload(alert("bot-1", note="x" * (2 * 1024 * 1024)))
    response = post(client, huge)
    assert response.status_code == 413
    assert not actions(engine)


def test_a_chunked_body_is_capped_too_and_a_small_one_is_taken_by_the_real_server(fleet):
    """Transfer-Encoding: chunked through waitress itself (which hands the de-chunked body on with its length):
    the cap still holds."""
    import http.client
    import threading

    from botwatch.core.serve import bind
    from botwatch.remediator.web.app import create_app
    engine, _, _, _ = fleet
    server = bind(create_app(engine, TOKEN), "127.0.0.1", 0, "test remediator")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        def chunked(body: bytes) -> tuple[int, dict]:
            connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
            chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
            connection.request("POST", "/alerts", body=chunks, encode_chunked=True,
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.status, json.loads(response.read())
            connection.close()
            return answer

        code, body = chunked(payload(alert("bot-1", note="x" * 4000 + "y")).encode() + b" " * (2 * 1024 * 1024))
        assert code == 413 and "payload over" in body["error"]
        assert not actions(engine)
        code, body = chunked(payload(alert("bot-1")).encode())
        assert code == 200 and body["scheduled"] == 1
    finally:
        server.close()
        thread.join(10)


def test_a_body_without_any_content_length_is_read_only_to_one_byte_past_the_cap(fleet):
    """A WSGI server that passes a chunked body on without CONTENT_LENGTH: the cap holds (read to one byte past)."""
    import io
    engine, client, _, _ = fleet
    huge = payload(alert("bot-1", note="x" * 4000)).encode() + b" " * (2 * 1024 * 1024)
    response = client.post("/alerts", input_stream=io.BytesIO(huge), environ_overrides={"CONTENT_LENGTH": ""},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 413 and not actions(engine)


def test_a_negative_content_length_is_a_bad_request_and_nothing_is_read(fleet):
    engine, client, _, _ = fleet
    response = client.post("/alerts", data=payload(alert("bot-1")), environ_overrides={"CONTENT_LENGTH": "-5"},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400 and "Content-Length" in response.get_json()["error"]
    assert not actions(engine)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_alerts_are_405_naming_post_and_counted(fleet, method):
    engine, client, _, _ = fleet
    response = client.open("/alerts", method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert "botwatch_webhook_requests_total{code=\"405\"} 1.0" in client.get("/metrics").get_data(as_text=True)
    assert not actions(engine)


def test_2xx_for_a_valid_payload_that_asks_for_nothing_we_do(fleet):
    engine, client, _, _ = fleet
    response = post(client, payload(alert("bot-1", alertname="TradingBotStaleData"),
                                    alert("bot-1", status="resolved")))
    assert response.status_code == 200 and response.get_json()["noted"] == 1
    assert not actions(engine)


@pytest.mark.parametrize("bot", ["nobody", "; rm -rf /", "../../etc/passwd", "$(reboot)", "bot-1 ", "x" * 4000, ""])
def test_unknown_or_hostile_bot_labels_are_ignored(fleet, tmp_path, bot):
    engine, client, runtimes, _ = fleet
    response = post(client, payload(alert(bot, fingerprint="fp-hostile")))
    assert response.status_code == 200 and response.get_json()["ignored"] == 1
    engine.runner.dispatch_due(inline=True)
    assert not actions(engine) and not any(r.calls for r in runtimes.values())
    assert not (tmp_path / "etc").exists()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "rm -rf" not in metrics and "passwd" not in metrics


def test_a_label_too_long_is_a_bad_request(fleet):
    engine, client, _, _ = fleet
    assert post(client, payload(alert("bot-1", note="x" * 5000))).status_code == 400
    assert not actions(engine)


def test_hostile_values_in_other_labels_never_reach_a_command(fleet):
    engine, client, runtimes, _ = fleet
    post(client, payload(alert("bot-2", alertname="TradingBotApiKeyErrors", on_auth_error="; touch /tmp/pwned",
                               command="rm -rf /")))
    engine.runner.dispatch_due(inline=True)
    [action] = actions(engine)
    assert action.outcome == "escalated" and "no on_auth_error command configured" in action.detail
    assert runtimes["bot-2"].calls == []


def test_answers_at_once_and_runs_the_playbook_in_the_background(fleet):
    engine, client, runtimes, _ = fleet
    response = post(client, payload(alert("bot-1")))
    assert response.status_code == 200 and response.get_json()["scheduled"] == 1
    assert runtimes["bot-1"].calls == []                   # nothing ran inside the request
    [action] = actions(engine)
    assert action.state == "scheduled" and action.playbook == "restart"


def test_the_same_alert_delivered_three_times_acts_once(fleet):
    engine, client, runtimes, _ = fleet
    for _ in range(3):   # HA peers and retries send the same fingerprint and startsAt
        assert post(client, payload(alert("bot-3"))).status_code == 200
    engine.runner.dispatch_due(inline=True)
    assert post(client, payload(alert("bot-3"))).get_json()["duplicate"] == 1
    assert runtimes["bot-3"].calls.count("restart") == 1
    assert len([a for a in actions(engine) if a.playbook == "restart"]) == 1


def test_a_storm_for_ten_bots_acts_once_each(fleet):
    engine, client, runtimes, _ = fleet
    alerts = [alert(f"bot-{i}") for i in range(10)]
    for _ in range(5):
        assert post(client, payload(*alerts, *alerts)).status_code == 200
    engine.runner.dispatch_due(inline=True)
    assert {name: r.calls.count("restart") for name, r in runtimes.items()} == {f"bot-{i}": 1 for i in range(10)}


def test_a_new_incident_of_the_same_alert_acts_again(fleet):
    engine, client, runtimes, clock = fleet
    post(client, payload(alert("bot-4", starts_at="2026-11-25T08:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    post(client, payload(alert("bot-4", status="resolved", starts_at="2026-11-25T08:00:00Z")))
    clock.advance(7200)
    runtimes["bot-4"]._up = False   # down again
    post(client, payload(alert("bot-4", starts_at="2026-11-25T10:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-4"].calls.count("restart") == 2


def test_one_alert_with_two_startsat_from_two_senders_acts_once(fleet):
    """An Alertmanager HA pair fed by two Prometheus servers: each peer keeps the startsAt it saw first."""
    engine, client, runtimes, clock = fleet
    other = client_for(engine)                     # the second peer: another connection, same receiver
    assert post(client, payload(alert("bot-5", starts_at="2026-11-25T08:00:00.100Z"))).get_json()["scheduled"] == 1
    assert post(other, payload(alert("bot-5", starts_at="2026-11-25T08:00:03.900Z"))).get_json()["duplicate"] == 1
    engine.runner.dispatch_due(inline=True)
    assert post(other, payload(alert("bot-5", starts_at="2026-11-25T08:00:03.900Z"))).get_json()["duplicate"] == 1
    assert runtimes["bot-5"].calls.count("restart") == 1
    # resolved by one peer's copy: every copy is closed, and a stale firing resend of either opens nothing
    post(other, payload(alert("bot-5", status="resolved", starts_at="2026-11-25T08:00:03.900Z")))
    runtimes["bot-5"]._up = False
    for starts_at in ("2026-11-25T08:00:00.100Z", "2026-11-25T08:00:03.900Z"):
        assert post(client, payload(alert("bot-5", starts_at=starts_at))).get_json()["duplicate"] == 1
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-5"].calls.count("restart") == 1
    # the next real incident carries a new startsAt and acts
    clock.advance(7200)
    assert post(client, payload(alert("bot-5", starts_at="2026-11-25T10:00:00Z"))).get_json()["scheduled"] == 1


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def test_a_refire_whose_resolve_never_came_is_a_new_incident(fleet):
    """Alertmanager tells a group's current state: an alert that resolved and fired again within one
    group_interval arrives only as a firing copy with a later startsAt. One that started after the open
    incident's actions had finished is a new incident; copies of the first stay duplicates, and the first's
    late resolve leaves the new one open."""
    engine, client, runtimes, clock = fleet
    fp = down_key("bot-8")       # a bot's TradingBotDown incidents are keyed by the bot
    first = iso(clock.now - 10)
    assert post(client, payload(alert("bot-8", starts_at=first))).get_json()["scheduled"] == 1
    replica = iso(clock.now + 1)           # the other Prometheus' copy, while the restart is still pending
    assert post(client, payload(alert("bot-8", starts_at=replica))).get_json()["duplicate"] == 1
    engine.runner.dispatch_due(inline=True)                       # restarted and verified
    assert runtimes["bot-8"].calls.count("restart") == 1
    clock.advance(30)
    runtimes["bot-8"]._up = False                                 # down again; the resolve never came
    again = iso(clock.now - 2)
    assert post(client, payload(alert("bot-8", starts_at=again))).get_json()["scheduled"] == 1
    assert post(client, payload(alert("bot-8", starts_at=iso(clock.now - 25)))).get_json()["duplicate"] == 1
    assert post(client, payload(alert("bot-8", status="resolved", starts_at=replica))).get_json()["resolved"] == 1
    assert engine.ledger.incident_open(fp, again), "the first incident's late resolve closed the second"
    clock.advance(3600)                                           # past the backoff of a second restart
    engine.runner.dispatch_due(inline=True)
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-8"].calls.count("restart") == 2
    assert post(client, payload(alert("bot-8", status="resolved", starts_at=again))).get_json()["resolved"] == 1
    assert not engine.ledger.incident_open(fp, again)


def test_a_resolve_from_the_other_peer_stops_the_retries(fleet):
    engine, client, runtimes, clock = fleet
    runtimes["bot-6"].comes_up = False                        # every restart fails: retries are scheduled
    post(client, payload(alert("bot-6", starts_at="2026-11-25T08:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    assert [a.state for a in actions(engine) if a.playbook == "restart"].count("scheduled") == 1   # a retry waits
    post(client, payload(alert("bot-6", status="resolved", starts_at="2026-11-25T08:00:02Z")))
    assert not engine.ledger.incident_open(down_key("bot-6"), "2026-11-25T08:00:00Z")
    clock.advance(7200)
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-6"].calls.count("restart") == 1             # the retry was cancelled, not run


def test_a_healthy_bot_is_never_restarted(fleet):
    engine, client, runtimes, _ = fleet
    runtimes["bot-7"]._up = True
    post(client, payload(alert("bot-7")))
    engine.runner.dispatch_due(inline=True)
    [action] = actions(engine)
    assert action.outcome == "skipped" and "already up" in action.detail
    assert runtimes["bot-7"].calls == []


def test_copies_of_an_incident_whose_look_found_nothing_are_one_look_per_recheck_window(fleet):
    """A later copy of an incident that did nothing (the bot was up) looks again — but copies within
    RECHECK_AFTER of the last look are that look: a storm of copies (an HA pair's, a replayed burst) for a
    healthy bot ran a playbook per delivery (the webhook storm bench: 330 req/s, p99 5 s)."""
    from botwatch.remediator.ledger.ledger import RECHECK_AFTER
    engine, client, runtimes, clock = fleet
    runtimes["bot-3"]._up = True
    for _ in range(3):
        for _ in range(5):
            post(client, payload(alert("bot-3")))
            engine.runner.dispatch_due(inline=True)
        clock.now += RECHECK_AFTER / 2
    looks = [a for a in actions(engine) if a.bot == "bot-3"]
    assert [a.outcome for a in looks] == ["skipped"] * 2, [a.detail for a in looks]   # at 0 s and at 2 s, not 15
    runtimes["bot-3"]._up = False                       # then it is down: the next copy past the window acts
    clock.now += RECHECK_AFTER
    post(client, payload(alert("bot-3")))
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-3"].calls == ["restart"]


def test_webhook_requests_are_counted_by_code(fleet):
    _, client, _, _ = fleet
    post(client, payload(alert("bot-1")), token=None)
    post(client, "{")
    post(client, payload(alert("bot-1")))
    text = client.get("/metrics").get_data(as_text=True)
    for code in ("200", "400", "401"):
        assert f'botwatch_webhook_requests_total{{code="{code}"}} 1.0' in text


def test_status_page_lists_bots_and_actions(fleet):
    engine, client, _, _ = fleet
    post(client, payload(alert("bot-5")))
    engine.runner.dispatch_due(inline=True)
    engine.ledger.heartbeat("vps-2", "10.0.0.12:9817", 1.8e9, "0.1.0")
    page = page_text(client)
    assert "bot-5" in page and "restart" in page
    assert "vps-2" in page and "10.0.0.12:9817" in page and "2027-01-15 08:00:00 UTC" in page
    assert "queued 0, running 0, expired 0" in page


def test_reset_needs_the_token(fleet):
    engine, client, _, _ = fleet
    engine.ledger.update_bot("bot-6", circuit_open=1, attempts=3)
    assert client.post("/reset/bot-6").status_code == 401
    assert client.post("/reset/nope", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    assert client.post("/reset/bot-6", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    state = engine.ledger.bot_state("bot-6")
    assert not state.circuit_open and state.attempts == 0


def agent_post(client, path, body, token=TOKEN):
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def test_the_agent_endpoints_take_only_a_current_claim_and_its_own_data(fleet):
    engine, client, _, _ = fleet
    token = agent_tokens.issue(engine.ledger, "vps-b", 0.0)           # the agent of vps-b's own credential
    poll = {"host": "vps-b", "address": "10.0.0.12:9817"}
    assert agent_post(client, "/agent/poll", poll, token="wrong").status_code == 401
    assert agent_post(client, "/agent/poll", poll, token=TOKEN).status_code == 401   # the webhook's: /alerts only
    for bad in ({**poll, "host": "VPS B; rm -rf /"}, {**poll, "address": "http://x"}, {**poll, "busy": "bot-1"},
                {"host": "vps-b"}, []):
        assert agent_post(client, "/agent/poll", bad, token).status_code == 400, bad
    job = engine.ledger.schedule("bot-1", "restart", 0.0, host="vps-b")
    [claimed] = agent_post(client, "/agent/poll", poll, token).get_json()["jobs"]
    assert claimed["id"] == job and claimed["attempt"] == 1
    claim = {"host": "vps-b", "attempt": 1}
    url = f"/agent/jobs/{job}/ledger"
    other = agent_tokens.issue(engine.ledger, "vps-c", 0.0)
    assert agent_post(client, url, {**claim, "host": "vps-c"}, other).status_code == 403   # another host's job
    assert agent_post(client, url, {**claim, "attempt": 2}, token).status_code == 409     # not the current claim
    assert agent_post(client, "/agent/jobs/999/ledger", claim, token).status_code == 404
    assert agent_post(client, url, {**claim, "op": "update_bot", "fields": {"bot = 'x'; --": 1}},
                      token).status_code == 400
    assert agent_post(client, url, {**claim, "op": "put", "key": "last_report_for", "value": 1},
                      token).status_code == 403
    assert agent_post(client, url, {**claim, "op": "update_bot", "fields": {"attempts": 2}}, token).status_code == 200
    assert engine.ledger.bot_state("bot-1").attempts == 2 and engine.ledger.bot_state("bot-2").attempts == 0
    end = {**claim, "outcome": "success", "detail": "restarted", "duration": 1.5, "restarted": True}
    assert agent_post(client, f"/agent/jobs/{job}/finish", {**end, "outcome": "rm -rf"}, token).status_code == 400
    assert agent_post(client, f"/agent/jobs/{job}/finish", end, other).status_code == 403
    assert agent_post(client, f"/agent/jobs/{job}/finish", end, token).status_code == 200
    assert agent_post(client, f"/agent/jobs/{job}/finish", end, token).status_code == 409          # once
    assert engine.ledger.action(job).outcome == "success"
    assert engine.metrics.restarts.labels("bot-1")._value.get() == 1
    local = agent_tokens.issue(engine.ledger, "local", 0.0)
    backup = {"host": "local", "bot": "bot-2", "outcome": "success", "detail": "1 row", "created": 1.8e9}
    assert agent_post(client, "/agent/backups", backup, token).status_code == 403        # not its host's bot
    assert agent_post(client, "/agent/backups", {**backup, "bot": "nope"}, local).status_code == 404
    assert agent_post(client, "/agent/backups", {**backup, "outcome": "great"}, local).status_code == 400
    assert agent_post(client, "/agent/backups", backup, local).status_code == 200
    refused = engine.metrics.agent_refused
    assert (refused.labels("token")._value.get(), refused.labels("another_host")._value.get()) == (2, 3)
    assert engine.metrics.last_backup.labels("bot-2")._value.get() == 1.8e9


def test_a_down_that_resolves_leaves_the_restart_a_stuck_alert_asked_for(fleet):
    """A kill: TradingBotDown and, while it restarts, TradingBotStuck. Down's resolve cancels Down's pending
    restart only (before: it cancelled the Stuck one too, which counted as acted on, and a Freqtrade frozen
    later in that Stuck episode was never restarted)."""
    engine, client, runtimes, clock = fleet
    runtimes["bot-7"]._up = False
    post(client, payload(alert("bot-7", starts_at="2026-11-25T08:00:00Z"),
                         alert("bot-7", "TradingBotStuck", starts_at="2026-11-25T08:00:03Z")))
    post(client, payload(alert("bot-7", status="resolved", starts_at="2026-11-25T08:00:00Z")))
    pending = [a for a in actions(engine) if a.state == "scheduled"]
    assert [a.alertname for a in pending] == ["TradingBotStuck"], [(a.alertname, a.detail) for a in actions(engine)]


def test_the_peers_late_resolve_of_the_last_episode_leaves_the_new_restart_pending(fleet):
    """Killed again soon after its last TradingBotDown resolved: the other peer's late resolved copy of the
    previous episode (its endsAt before the new one began) neither closes the new incident nor cancels its
    restart (before: the bot was left down for good)."""
    engine, client, runtimes, clock = fleet
    post(client, payload(alert("bot-9", starts_at="2026-11-25T08:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    post(client, payload(dict(alert("bot-9", status="resolved", starts_at="2026-11-25T08:00:00Z"),
                              endsAt="2026-11-25T08:01:00Z")))
    runtimes["bot-9"]._up = False
    clock.advance(7200)
    assert post(client, payload(alert("bot-9", starts_at="2026-11-25T08:01:20Z"))).get_json()["scheduled"] == 1
    late = dict(alert("bot-9", status="resolved", starts_at="2026-11-25T08:00:01Z"), endsAt="2026-11-25T08:01:01Z")
    assert post(client, payload(late)).get_json()["resolved"] == 1
    assert engine.ledger.incident_open(down_key("bot-9"), "2026-11-25T08:01:20Z")
    engine.runner.dispatch_due(inline=True)
    assert runtimes["bot-9"].calls.count("restart") == 2


def test_alert_delivery_failing_is_recorded_shown_and_said_once_on_the_remediators_own_path(
        tmp_path, engine_factory, telegram):
    """BotwatchAlertDeliveryFailing has no bot: the intake dropped it as "unknown bot". Telegram is usually
    what fails, so the remediator says it through its own notifier, once per incident."""
    config = make_config(tmp_path, [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}],
                         telegram_url=telegram.url)
    engine = engine_factory(config, clock=FakeClock())
    client = client_for(engine)
    failing = alert("", "BotwatchAlertDeliveryFailing", severity="critical", integration="telegram")
    del failing["labels"]["bot"]
    for _ in range(2):
        response = post(client, payload(failing))
        assert response.status_code == 200
    assert response.get_json()["duplicate"] == 1
    wait_for(lambda: any("notifications are failing" in m["text"] for m in telegram.messages()),
             what="the remediator's own notice")
    assert sum("notifications are failing" in m["text"] for m in telegram.messages()) == 1
    ops = (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    assert "BotwatchAlertDeliveryFailing → alert delivery: failing" in ops
    assert "Alertmanager's telegram notifications are failing since" in page_text(client)
    resolved = dict(failing, status="resolved", endsAt="2026-11-25T09:00:00Z")
    assert post(client, payload(resolved)).get_json()["resolved"] == 1
    client.application.extensions["gatherer"].stale()     # the board is gathered again (at most every 5 s)
    assert "notifications are failing" not in page_text(client)
    assert "alert delivery: resolved" in (tmp_path / "data" / "memory" / "bot-operations.md").read_text()


def test_the_remediator_serves_the_shipped_runbook_where_every_alert_links(fleet):
    """runbook_url pointed at a repository that is not this one; by default it is now the runbook shipped in
    the package, at the remediator's /runbook, each alert's anchor a heading there."""
    import re

    from botwatch.core.mixin import CONFIG, alert_rules
    _, client, _, _ = fleet
    page = client.get("/runbook").get_data(as_text=True)
    anchors = set(re.findall(r'<h2 id="([^"]+)">', page))
    for rule in alert_rules(CONFIG):
        url, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert url == f"http://127.0.0.1:{CONFIG['ports']['remediator']}/runbook" and anchor in anchors, rule["alert"]


def test_an_agent_token_is_bound_to_its_host_revoked_at_once_and_replaced_by_a_fresh_one(fleet):
    engine, client, _, _ = fleet
    host1, host2 = agent_tokens.issue(engine.ledger, "host-1", 0.0), agent_tokens.issue(engine.ledger, "host-2", 0.0)
    job = engine.ledger.schedule("bot-3", "restart", 0.0, host="host-2")
    # host-1's token names host-2, then claims, renews and finishes host-2's job: refused, nothing changes
    assert agent_post(client, "/agent/poll", {"host": "host-2", "address": "10.0.0.2:9817"}, host1).status_code == 403
    assert engine.ledger.action(job).state == "scheduled" and engine.ledger.agents() == []
    assert agent_post(client, "/agent/poll", {"host": "host-1", "address": "10.0.0.1:9817"},
                      host1).get_json()["jobs"] == []
    [claimed] = agent_post(client, "/agent/poll", {"host": "host-2", "address": "10.0.0.2:9817"},
                           host2).get_json()["jobs"]
    for verb in ("renew", "finish", "ledger"):
        body = {"host": "host-2", "attempt": claimed["attempt"], "outcome": "success", "detail": "x", "op": "bot_state"}
        assert agent_post(client, f"/agent/jobs/{job}/{verb}", body, host1).status_code == 403, verb
    assert engine.ledger.action(job).state == "running"
    assert agent_post(client, "/agent/death", {"bot": "bot-3", "at": 1.0, "host": "host-2", "detail": "x"},
                      host1).status_code == 403
    # revoked: refused from its next call; a fresh one for the same host works, the old one does not
    assert agent_tokens.revoke(engine.ledger, "host-2")
    poll = {"host": "host-2", "address": "10.0.0.2:9817"}
    assert agent_post(client, "/agent/poll", poll, host2).status_code == 401
    fresh = agent_tokens.issue(engine.ledger, "host-2", 1.0)
    assert agent_post(client, "/agent/poll", poll, fresh).status_code == 200
    assert agent_post(client, "/agent/poll", poll, host2).status_code == 401
    assert host2 not in str(engine.ledger.get(agent_tokens.TOKENS_KEY))          # only hashes are kept
