"""ExchangeRateLimited through the webhook: once per incident, each bot on the exchange runs its own
on_rate_limit and the exchange's command runs once; bots on other exchanges are left alone."""

from botwatch.core.config import config_from_mapping
from tests.conftest import wait_for
from tests.remediator.conftest import RecordingRuntime, alert, client_for, payload, post

BOTH_LEDGERS = True     # every engine test here runs on SQLite and on PostgreSQL


def command(ran, name):
    return ["/bin/sh", "-c", f"echo {name} >> {ran}"]


def test_one_incident_runs_each_bots_command_once_and_the_exchanges_once(tmp_path, engine_factory):
    ran = tmp_path / "ran.txt"
    bots = [{"name": name, "pidfile": f"{name}.pid", "data_file": f"{name}.csv", "exchange": exchange,
             **({"on_rate_limit": command(ran, name)} if own else {})}
            for name, exchange, own in (("a", "binance", True), ("b", "binance", True), ("c", "binance", False),
                                        ("k", "kraken", True))]
    config = config_from_mapping({"bots": bots, "report": {"enabled": False},
                                  "exchanges": {"binance": {"on_rate_limit": command(ran, "binance")}}},
                                 base=tmp_path)
    engine = engine_factory(config, runtime_factory=lambda bot: RecordingRuntime(bot, up=True))
    engine.start()
    client = client_for(engine)
    firing = alert("", "ExchangeRateLimited", fingerprint="fp-binance", exchange="binance", severity="warning")
    del firing["labels"]["bot"]
    for _ in range(3):                                # Alertmanager's repeats: one incident
        assert post(client, payload(firing)).status_code == 200
    done = lambda: [a for a in engine.ledger.actions()   # noqa: E731
                    if a.state == "done" and a.alertname == "ExchangeRateLimited"]
    wait_for(lambda: len(done()) == 3, what="three actions to finish")
    assert sorted(ran.read_text().split()) == ["a", "b", "binance"]
    assert {(a.bot, a.playbook, a.outcome) for a in done()} == {
        ("a", "api_rate_limit", "success"), ("b", "api_rate_limit", "success"), ("a", "exchange_rate_limit", "success")}
    unknown = dict(firing, labels={**firing["labels"], "exchange": "nowhere"}, fingerprint="fp-nowhere")
    assert post(client, payload(unknown)).status_code == 200
    assert len([a for a in engine.ledger.actions() if a.alertname == "ExchangeRateLimited"]) == 3


def test_an_exchange_without_any_command_sends_one_notice(tmp_path, engine_factory):
    bots = [{"name": name, "pidfile": f"{name}.pid", "data_file": f"{name}.csv", "exchange": "binance"}
            for name in ("a", "b")]
    config = config_from_mapping({"bots": bots, "report": {"enabled": False}}, base=tmp_path)
    engine = engine_factory(config, runtime_factory=lambda bot: RecordingRuntime(bot, up=True))
    engine.start()
    firing = alert("", "ExchangeRateLimited", fingerprint="fp-binance", exchange="binance", severity="warning")
    del firing["labels"]["bot"]
    assert post(client_for(engine), payload(firing)).status_code == 200
    [action] = wait_for(lambda: [a for a in engine.ledger.actions()
                                 if a.state == "done" and a.alertname == "ExchangeRateLimited"], what="the action")
    assert action.playbook == "exchange_rate_limit" and action.outcome == "skipped"
    wait_for(lambda: (tmp_path / "outbox.jsonl").exists(), what="the notice")
    assert "rate-limiting" in (tmp_path / "outbox.jsonl").read_text()


def test_the_exchange_alert_resolving_cancels_only_what_it_scheduled(tmp_path):
    from botwatch.remediator.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ledger.schedule("a", "api_rate_limit", 100.0, "ExchangeRateLimited")
    own = ledger.schedule("a", "api_rate_limit", 100.0, "TradingBotRateLimited")
    assert ledger.cancel_scheduled("a", "api_rate_limit", 101.0, "resolved", alertname="ExchangeRateLimited") == 1
    assert ledger.action(own).state == "scheduled"
    ledger.close()
