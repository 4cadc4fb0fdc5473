"""Playbooks against real things: paperbot processes killed and brought back, commands from the config,
Telegram notices captured by the local stand-in; backoff and the circuit on an injected clock."""

import os
import signal
import time

import pytest

from tests.conftest import parse_metrics, sample, wait_for
from tests.remediator.conftest import FakeClock, RecordingRuntime, alert, client_for, make_config, payload, post

BOTH_LEDGERS = True     # every engine test here runs on SQLite and on PostgreSQL


def pid_of(bot) -> int | None:
    try:
        return int(bot.pidfile.read_text())
    except (OSError, ValueError):
        return None


def alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return ") Z " not in f.read()


@pytest.fixture
def reaped():
    """Kill a paperbot the test started and wait for it, so it is gone and not a zombie."""
    def kill(bot):
        bot.kill(signal.SIGKILL)
    return kill


@pytest.mark.slow
def test_a_killed_paperbot_is_restarted_and_verified_through_its_health_endpoint(tmp_path, paperbots, engine_factory,
                                                                                 telegram, reaped):
    bot = paperbots("phoenix")
    config = make_config(tmp_path, [bot.bot_config()], telegram_url=telegram.url)
    engine = engine_factory(config)
    engine.start()
    client = client_for(engine)
    old = pid_of(bot)
    reaped(bot)
    assert post(client, payload(alert("phoenix"))).status_code == 200
    restarts = lambda: [a for a in engine.ledger.actions() if a.playbook == "restart"]  # noqa: E731
    wait_for(lambda: restarts() and restarts()[0].state == "done", timeout=30, what="the restart to finish")
    [action] = restarts()
    assert action.outcome == "success", action.detail
    new = pid_of(bot)
    assert new and new != old and alive(new)
    assert bot.health()["pid"] == new
    assert "up after 2s" in action.detail and action.log_excerpt
    notices = wait_for(telegram.messages, what="the Telegram notice")   # sent right after the ledger entry
    assert len(notices) == 1 and "phoenix" in notices[0]["text"] and notices[0]["chat_id"] == 4242
    assert notices[0]["parse_mode"] == "HTML"
    log = (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    assert "phoenix · TradingBotDown → restart: success" in log and "```text" in log
    # The stand-in records the message before its answer reaches the notifier, which counts on the answer.
    def counted():
        metrics = parse_metrics(client.get("/metrics").get_data(as_text=True))
        return metrics if sample(metrics, "botwatch_notifications_total", outcome="sent") == 1 else None
    metrics = wait_for(counted, what="the sent notice to be counted")
    assert sample(metrics, "botwatch_bot_restarts_total", bot="phoenix") == 1
    assert sample(metrics, "botwatch_remediations_total", bot="phoenix", playbook="restart", outcome="success") == 1
    os.kill(new, signal.SIGTERM)


@pytest.mark.slow
def test_dry_run_decides_and_records_but_touches_nothing(tmp_path, paperbots, engine_factory, reaped):
    bot = paperbots("dreamer")
    engine = engine_factory(make_config(tmp_path, [bot.bot_config()], dry_run=True))
    client = client_for(engine)
    old = pid_of(bot)
    reaped(bot)
    post(client, payload(alert("dreamer")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "dry_run" and "would restart" in action.detail
    time.sleep(1)
    assert pid_of(bot) == old and not alive(old)
    assert engine.ledger.bot_state("dreamer").attempts == 0


def never_up_bot(tmp_path) -> dict:
    """A process bot whose start_command exits at once: every restart "works" and verification fails."""
    return {"name": "sickly", "pidfile": str(tmp_path / "sickly.pid"), "data_file": str(tmp_path / "sickly.csv"),
            "start_command": ["true"], "log_file": str(tmp_path / "sickly.log")}


def test_the_backoff_counts_from_the_restart_not_from_a_slow_stop_before_it(tmp_path, engine_factory):
    """A bot that ignores SIGTERM (frozen) takes stop_timeout to stop: the wait before the next attempt
    starts when the restart was done (seen in the chaos soak: a 10 s stop ate the fast timings' 10 s
    backoff, and a Freqtrade still starting was restarted again)."""
    clock = FakeClock()

    class SlowStop(RecordingRuntime):
        def restart(self):
            clock.advance(10)
            super().restart()

    config = make_config(tmp_path, [never_up_bot(tmp_path)], backoff=["10s", "30s", "60s"], verify_after="2s",
                         verify_within="2s")
    engine = engine_factory(config, clock=clock, runtime_factory=lambda bot: SlowStop(bot, comes_up=False))
    post(client_for(engine), payload(alert("sickly")))
    t0 = clock.now
    engine.runner.dispatch_due(inline=True)                 # stopped in 10 s, started, not up 2 s later
    assert engine.ledger.bot_state("sickly").last_restart_at == t0 + 10
    engine.runner.dispatch_due(inline=True)                 # the retry waits out the backoff from there
    [waiting] = [a for a in engine.ledger.actions() if a.state == "scheduled"]
    assert waiting.run_at == t0 + 20 and "backoff" in waiting.detail


def test_restart_at_once_then_after_5_15_and_30_minutes_then_the_circuit_opens_and_escalates(
        tmp_path, engine_factory, telegram):
    """The brief's backoff: restart at once, then after 5, 15 and 30 minutes, then give up (max_attempts 3:
    the restarts after the first). The 30-minute wait was never reached: the circuit opened after the 3rd."""
    clock = FakeClock()
    config = make_config(tmp_path, [never_up_bot(tmp_path)], telegram_url=telegram.url, max_attempts=3,
                         backoff=["5m", "15m", "30m"], verify_after="30s")
    engine = engine_factory(config, clock=clock)
    client = client_for(engine)
    post(client, payload(alert("sickly")))
    t0 = clock.now

    def run():
        return [a.id for a in engine.runner.dispatch_due(inline=True)]

    run()                                             # restart 1 at once, verification fails
    state = engine.ledger.bot_state("sickly")
    assert state.attempts == 1 and state.last_restart_at == t0
    last = t0
    for attempt, wait in ((2, 300), (3, 900), (4, 1800)):
        run()                                         # the retry waits for the backoff
        [scheduled] = [a for a in engine.ledger.actions() if a.state == "scheduled"]
        assert scheduled.run_at == last + wait and "backoff" in scheduled.detail
        clock.now = last + wait - 1
        assert run() == []                            # not a second early
        clock.now = last = last + wait
        run()                                         # restart `attempt`
        assert engine.ledger.bot_state("sickly").attempts == attempt
    run()                                             # a 5th is not attempted: give up
    state = engine.ledger.bot_state("sickly")
    assert state.circuit_open and state.attempts == 4
    outcomes = [a.outcome for a in reversed(engine.ledger.actions())]
    assert outcomes == ["failed", "failed", "failed", "failed", "gave_up"]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'botwatch_circuit_open{bot="sickly"} 1.0' in text
    assert 'botwatch_bot_restarts_total{bot="sickly"} 4.0' in text
    assert any("gave up after 4 restarts" in m["text"] for m in telegram.messages())
    # nothing more while the circuit is open: the alert re-sent with another startsAt (a restarted
    # Prometheus, the other HA peer) is the same incident
    response = post(client, payload(alert("sickly", starts_at="2026-11-25T09:00:00Z")))
    assert response.get_json()["duplicate"] == 1
    clock.advance(7200)
    assert run() == []
    assert engine.ledger.actions()[0].outcome == "gave_up" and engine.ledger.bot_state("sickly").attempts == 4
    # an operator reset re-arms it
    assert engine.intake.reset("sickly")
    assert not engine.ledger.bot_state("sickly").circuit_open


def test_a_resolved_alert_cancels_the_pending_retry(tmp_path, engine_factory):
    clock = FakeClock()
    engine = engine_factory(make_config(tmp_path, [never_up_bot(tmp_path)]), clock=clock)
    client = client_for(engine)
    post(client, payload(alert("sickly")))
    engine.runner.dispatch_due(inline=True)
    engine.runner.dispatch_due(inline=True)
    assert any(a.state == "scheduled" for a in engine.ledger.actions())
    post(client, payload(alert("sickly", status="resolved")))
    assert not any(a.state == "scheduled" for a in engine.ledger.actions())
    assert engine.ledger.actions()[0].outcome == "cancelled"


def test_the_restart_count_resets_after_staying_healthy(tmp_path, engine_factory):
    clock = FakeClock()
    engine = engine_factory(make_config(tmp_path, [never_up_bot(tmp_path)], healthy_reset_after="1h"), clock=clock)
    client = client_for(engine)
    post(client, payload(alert("sickly", starts_at="2026-11-25T08:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    assert engine.ledger.bot_state("sickly").attempts == 1
    post(client, payload(alert("sickly", status="resolved", starts_at="2026-11-25T08:00:00Z")))
    clock.advance(1800)                                    # healthy only half an hour: still counted
    post(client, payload(alert("sickly", starts_at="2026-11-25T09:00:00Z")))
    assert engine.ledger.bot_state("sickly").attempts == 1
    post(client, payload(alert("sickly", status="resolved", starts_at="2026-11-25T09:00:00Z")))
    clock.advance(3601)
    post(client, payload(alert("sickly", starts_at="2026-11-25T11:00:00Z")))
    assert engine.ledger.bot_state("sickly").attempts == 0


def test_the_ledger_survives_a_remediator_restart(tmp_path, engine_factory, ledger_backend):
    clock = FakeClock()
    config = make_config(tmp_path, [never_up_bot(tmp_path)])
    first = engine_factory(config, clock=clock)
    post(client_for(first), payload(alert("sickly")))
    first.ledger.claim("local", "first", clock(), 30.0)  # killed in the middle of the playbook
    first.stop(wait=False)
    first.ledger.close()

    second = engine_factory(config, clock=clock)         # same data dir
    client = client_for(second)
    assert post(client, payload(alert("sickly"))).get_json()["duplicate"] == 1
    [left] = second.ledger.actions()
    if ledger_backend == "sqlite":      # one remediator owns the file: what it was running is run again at once
        assert left.state == "scheduled" and "interrupted" in left.detail
    else:                               # a shared ledger: a peer may be running it; its lease tells
        assert left.state == "running"
        assert second.runner.dispatch_due(inline=True) == []
        clock.advance(31)
    [rerun] = second.runner.dispatch_due(inline=True)
    assert rerun.id == left.id and rerun.attempt == 2
    assert second.ledger.actions()[-1].outcome == "failed"
    assert second.ledger.bot_state("sickly").attempts == 1


def test_api_key_errors_never_restart_and_run_on_auth_error(tmp_path, paperbots, engine_factory, telegram):
    bot = paperbots("badkey")
    marker = tmp_path / "standby-key-used"
    config = make_config(tmp_path, [bot.bot_config(on_auth_error=["sh", "-c", f"echo switched > {marker}"])],
                         telegram_url=telegram.url)
    engine = engine_factory(config)
    client = client_for(engine)
    pid = pid_of(bot)
    post(client, payload(alert("badkey", alertname="TradingBotApiKeyErrors", severity="critical")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "escalated" and "not restarted" in action.detail and "exit 0" in action.detail
    assert marker.read_text() == "switched\n"
    assert pid_of(bot) == pid and alive(pid)
    assert "API-key errors" in telegram.messages()[0]["text"]


def test_rate_limit_runs_on_rate_limit_with_the_bots_pid(tmp_path, paperbots, engine_factory):
    bot = paperbots("hasty")
    marker = tmp_path / "slow-down"
    config = make_config(tmp_path, [bot.bot_config(on_rate_limit=["sh", "-c", f'echo "$0" > {marker}', "{pid}"])])
    engine = engine_factory(config)
    post(client_for(engine), payload(alert("hasty", alertname="TradingBotRateLimited", severity="warning",
                                           pid="; rm -rf /")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "success", action.detail
    assert marker.read_text().strip() == str(pid_of(bot))   # the pid from the bot's pidfile, never the label


def test_botwatch_remediator_reset_closes_the_circuit_in_the_ledger(tmp_path):
    import json
    import subprocess

    from botwatch.remediator.ledger import Ledger
    from tests.conftest import BOTWATCH, ROOT
    (tmp_path / "bots.json").write_text(json.dumps({"bots": [never_up_bot(tmp_path)]}))
    data = tmp_path / "state"
    ledger = Ledger(data / "ledger.sqlite3")
    ledger.update_bot("sickly", attempts=3, circuit_open=1)
    ledger.close()
    env = {**os.environ, "BOTWATCH_DATA_DIR": str(data)}
    result = subprocess.run(BOTWATCH + ["remediator", "reset", "sickly", "--config", str(tmp_path / "bots.json")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    state = Ledger(data / "ledger.sqlite3").bot_state("sickly")
    assert not state.circuit_open and state.attempts == 0
    unknown = subprocess.run(BOTWATCH + ["remediator", "reset", "nobody", "--config", str(tmp_path / "bots.json")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no bot 'nobody'" in unknown.stderr


def test_a_bot_known_only_by_its_health_endpoint_is_escalated_not_retried(tmp_path, engine_factory):
    from tests.conftest import free_port
    bot = {"name": "remote", "health_endpoint": f"http://127.0.0.1:{free_port()}/health",
           "data_file": str(tmp_path / "r.csv")}
    engine = engine_factory(make_config(tmp_path, [bot]), clock=FakeClock())
    post(client_for(engine), payload(alert("remote")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "escalated" and "nothing to restart" in action.detail
    assert engine.ledger.bot_state("remote").attempts == 0


def test_a_bot_whose_database_is_damaged_is_left_to_the_restore_not_restarted(tmp_path, engine_factory):
    """A Freqtrade exits on a database whose header is gone: restarted, it would die the same way, and each
    restart spends an attempt towards giving up (seen in the chaos soak: the circuit opened). The restore
    starts it with a good copy. A database not there yet is the bot's to create: that one is restarted."""
    db = tmp_path / "tradesv3.sqlite"
    bot = {"name": "ft", "preset": "freqtrade", "pidfile": str(tmp_path / "ft.pid"), "data_file": str(db)}
    clock = FakeClock()
    config = make_config(tmp_path, [bot])
    runtimes = {}
    engine = engine_factory(config, clock=clock, runtime_factory=lambda b: runtimes.setdefault(
        b.name, RecordingRuntime(b, comes_up=True)))
    client = client_for(engine)
    db.write_bytes(b"\0" * 16 + b"x" * 8176)                 # the header zeroed
    post(client, payload(alert("ft", starts_at="2026-11-25T08:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    [action] = [a for a in engine.ledger.actions() if a.playbook == "restart"]
    assert action.outcome == "skipped" and "database is corrupt (not_a_database)" in action.detail, action.detail
    assert runtimes["ft"].calls == [] and engine.ledger.bot_state("ft").attempts == 0
    db.unlink()                                             # no database at all: start it, it makes one
    post(client, payload(alert("ft", status="resolved", starts_at="2026-11-25T08:00:00Z")))
    clock.advance(3600)
    post(client, payload(alert("ft", starts_at="2026-11-25T09:00:00Z")))
    engine.runner.dispatch_due(inline=True)
    assert runtimes["ft"].calls == ["restart"]


def test_a_bot_botwatch_just_started_is_given_verify_within_not_started_again(tmp_path, engine_factory):
    """A restore started the bot; its process runs but its health endpoint (or API) is not up yet, and
    TradingBotDown/Stuck fire meanwhile: their restart waits until verify_within after that start, then
    restarts only if it is still not well (before: a second start of a Freqtrade on its restored database)."""
    clock = FakeClock()
    bot = {"name": "slow", "pidfile": str(tmp_path / "slow.pid"), "data_file": str(tmp_path / "slow.csv"),
           "health_endpoint": "http://127.0.0.1:9/health", "start_command": ["true"]}
    config = make_config(tmp_path, [bot], verify_within="60s")
    runtimes = {}
    engine = engine_factory(config, clock=clock,
                            runtime_factory=lambda b: runtimes.setdefault(b.name, RecordingRuntime(b, up=True)))
    engine.ledger.update_bot("slow", last_start_at=clock.now - 5)        # the restore's start, 5 s ago
    post(client_for(engine), payload(alert("slow", "TradingBotStuck")))
    engine.runner.dispatch_due(inline=True)
    [waiting] = engine.ledger.actions()
    assert runtimes["slow"].calls == [] and waiting.state == "scheduled", waiting.detail
    assert waiting.run_at == clock.now + 55 and "still starting" in waiting.detail
    clock.advance(55)
    engine.runner.dispatch_due(inline=True)                           # still not answering: now it is trouble
    assert runtimes["slow"].calls == ["restart"]


def test_a_drawdown_runs_on_drawdown_once_per_incident_and_never_touches_the_bot(tmp_path, paperbots, engine_factory):
    bot = paperbots("swing")
    marker = tmp_path / "drawdown-seen"
    config = make_config(tmp_path, [bot.bot_config(max_drawdown="10%", on_drawdown=["sh", "-c", f"echo x >> {marker}"]),
                                    paperbots("calm").bot_config(max_drawdown=250)])
    engine = engine_factory(config)
    client = client_for(engine)
    pid = pid_of(bot)
    for _ in range(3):          # Alertmanager's repeats of one incident
        post(client, payload(alert("swing", alertname="TradingBotDrawdown", severity="critical", fingerprint="dd1"),
                             alert("calm", alertname="TradingBotDrawdown", severity="critical", fingerprint="dd2")))
        engine.runner.dispatch_due(inline=True)
    actions = {a.bot: a for a in engine.ledger.actions()}
    assert len(engine.ledger.actions()) == 2
    assert actions["swing"].outcome == "success" and "ran on_drawdown sh: exit 0" in actions["swing"].detail
    assert actions["calm"].outcome == "skipped" and "no on_drawdown configured" in actions["calm"].detail
    assert marker.read_text() == "x\n"
    assert pid_of(bot) == pid and alive(pid)                   # never stopped, never restarted


def test_the_playbooks_the_mixin_names_are_the_ones_the_remediator_runs():
    from botwatch.core.mixin import CONFIG
    from botwatch.remediator.playbooks import BY_ALERT, PLAYBOOKS
    assert set(CONFIG["playbooks"].values()) == set(PLAYBOOKS)
    assert BY_ALERT == CONFIG["playbooks"] and PLAYBOOKS["restart"].alertnames == ("TradingBotDown", "TradingBotStuck")


def test_freqtrade_stopentry_asks_its_api_and_says_so_when_it_does_not_answer():
    from types import SimpleNamespace

    from botwatch.remediator.playbooks.drawdown import drawdown_playbook
    asked = []
    api = SimpleNamespace(post=lambda endpoint: asked.append(endpoint) or {"status": "No more entries will occur now."})
    ctx = SimpleNamespace(bot=SimpleNamespace(name="ft", on_drawdown="freqtrade_stopentry"), dry_run=False, api=api,
                          money=lambda: "")
    result = drawdown_playbook(ctx)
    assert asked == ["stopentry"] and result.outcome == "success" and "stop entering" in result.notice
    silent = SimpleNamespace(**{**vars(ctx), "api": SimpleNamespace(post=lambda endpoint: None)})
    result = drawdown_playbook(silent)
    assert result.outcome == "failed" and result.retry and "did not answer" in result.notice
