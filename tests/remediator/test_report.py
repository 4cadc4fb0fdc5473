"""The morning report against a real Prometheus (24h backfilled with promtool, and live), its Telegram
delivery to the local stand-in, and its schedule."""

import re
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from botwatch.core.config import config_from_mapping
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.tell.notifier import Notifier, split_message
from botwatch.remediator.playbooks import VERBS
from botwatch.remediator.tell.report import build_report
from botwatch.remediator.actions.scheduler import CATCH_UP, claim, due, next_run
from tests.conftest import free_port, require_tool, wait_for, write_config
from tests.remediator.conftest import FakeClock, make_config

pytestmark = pytest.mark.slow

STEP = 60
HOURS = 25
DOWN_FROM, DOWN_TO = 3 * 3600 + 15 * 60, 3 * 3600 + 45 * 60   # flaky is down 03:15-03:45 (seconds into the window)


def openmetrics(end: int) -> str:
    """25 hours of gauges at a 60s step; the last 24h hold the report's ground truth."""
    start_window = end - 86400
    lines = []
    series = {"tradingbot_up": {}, "tradingbot_equity": {}, "tradingbot_data_file_valid": {}, "tradingbot_position": {}}
    for t in range(end - HOURS * 3600, end + 1, STEP):
        into = t - start_window
        series["tradingbot_up"][t] = {'bot="steady"': 1, 'bot="flaky"': 0 if DOWN_FROM <= into < DOWN_TO else 1}
        ramp = max(0, into) / 86400
        series["tradingbot_equity"][t] = {'bot="steady"': 1000 + 12.40 * ramp, 'bot="flaky"': 2000 - 50 * ramp}
        series["tradingbot_data_file_valid"][t] = {'bot="steady"': 1, 'bot="flaky"': 1}
        series["tradingbot_position"][t] = {'bot="steady",symbol="<b>DOGE</b>&USDT"': 1500}
        if end - t < 600:        # vps-b's agent unreachable for the last 10 minutes
            series.setdefault("ALERTS", {})[t] = {'alertname="BotwatchHostDown",alertstate="firing",host="vps-b"': 1}
    for name, points in series.items():
        lines.append(f"# TYPE {name} gauge")
        for t, values in points.items():
            for labels, value in values.items():
                lines.append(f"{name}{{{labels}}} {value} {t}")
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture
def backfilled(tmp_path, prometheus):
    end = int(time.time()) // STEP * STEP
    source = tmp_path / "history.om"
    source.write_text(openmetrics(end))
    tsdb = tmp_path / "tsdb"
    result = subprocess.run([require_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source),
                             str(tsdb)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    url = prometheus("global: {scrape_interval: 1h}\n", tsdb=tsdb)
    return url, end


def fleet_config(tmp_path, **report):
    return config_from_mapping({"report": report, "bots": [
        {"name": "steady", "pidfile": "s.pid", "data_file": "s.csv"},
        {"name": "flaky", "pidfile": "f.pid", "data_file": "f.csv"}]}, base=tmp_path)


def test_report_numbers_match_the_backfilled_ground_truth(tmp_path, backfilled):
    url, end = backfilled
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    restart_at = end - 86400 + DOWN_TO - 60
    action = ledger.schedule("flaky", "restart", restart_at, "TradingBotDown", "fp", "s")
    ledger.start(action, restart_at)
    ledger.finish(action, restart_at + 30, "success", "OOM-killed; memory limit raised from 1 to 2 bytes; restarted")
    report = build_report(fleet_config(tmp_path), url, ledger, 86400, now=end, verbs=VERBS)
    text = report.text
    samples = 86400 // STEP + 1
    flaky_uptime = 1 - (DOWN_TO - DOWN_FROM) / STEP / samples
    hhmm = datetime.fromtimestamp(restart_at, timezone.utc).strftime("%H:%M")
    assert "- steady: 100.0%" in text
    assert f"- flaky: {flaky_uptime * 100:.1f}% (1 restart at {hhmm})" in text
    assert "- steady: +$12.40 (+1.2%)" in text and "- flaky: -$50.00 (-2.5%)" in text
    assert f"- {hhmm}: Restarted flaky (memory limit)" in text
    assert "- steady: +1500 &lt;b&gt;DOGE&lt;/b&gt;&amp;USDT" in text      # a hostile label, escaped
    assert "Current Status: ✅ All bots operational" in text
    assert report.chart and report.chart.startswith(b"\x89PNG")
    frame = report.frame.set_index("bot")
    assert frame.loc["flaky", "uptime"] == pytest.approx(flaky_uptime)
    assert frame.loc["steady", "pnl"] == pytest.approx(12.40)


def test_with_many_hosts_the_report_groups_bots_by_host_and_names_a_host_down(tmp_path, backfilled):
    url, end = backfilled
    config = config_from_mapping({"bots": [
        {"name": "steady", "host": "vps-a", "pidfile": "s.pid", "data_file": "s.csv"},
        {"name": "flaky", "host": "vps-b", "pidfile": "f.pid", "data_file": "f.csv"}]}, base=tmp_path)
    report = build_report(config, url, None, 86400, now=end)
    text = report.text
    uptime = text.split("<b>Uptime")[1].split("<b>P&amp;L")[0]
    assert re.search(r"<i>vps-a</i>: 100\.0% on average\n- steady: 100\.0%", uptime), uptime
    assert re.search(r"<i>vps-b</i>: [\d.]+% on average — unreachable now\n- flaky: ", uptime), uptime
    assert "<i>vps-a</i>: +$12.40\n- steady: +$12.40" in text and "<i>vps-b</i>: -$50.00\n- flaky: -$50.00" in text
    assert "Current Status: ⚠️ vps-b unreachable (its agent is down)" in text
    assert list(report.frame["host"]) == ["vps-a", "vps-b"]


def test_report_without_prometheus_or_ledger_still_says_what_it_knows(tmp_path):
    report = build_report(fleet_config(tmp_path), f"http://127.0.0.1:{free_port()}", None, 86400)
    assert "unreachable" in report.text and "Current Status: ❔ unknown" in report.text
    assert "- steady: unknown" in report.text and "- flaky: no data" in report.text
    assert report.chart is None


def test_live_report_from_the_exporter_and_a_killed_paperbot(tmp_path, paperbots, exporter_process, prometheus):
    good, victim = paperbots("fine", trade_interval=0.2), paperbots("victim", trade_interval=0.2)
    config_path = write_config(tmp_path / "bots.json", [good.bot_config(), victim.bot_config()])
    metrics = exporter_process(config_path)
    target = metrics.removeprefix("http://").removesuffix("/metrics")
    url = prometheus("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                     f"scrape_configs: [{{job_name: botwatch-exporter, static_configs: [{{targets: ['{target}']}}]}}]\n")
    time.sleep(12)
    victim.kill(signal.SIGKILL)
    time.sleep(8)
    from botwatch.core.config import load_config
    report = build_report(load_config(config_path), url, None, 20)
    uptime = {bot: float(pct) for bot, pct in re.findall(r"^- (fine|victim): ([\d.]+)%", report.text, re.M)}
    assert uptime["fine"] == 100.0 and 30 < uptime["victim"] < 80, report.text
    assert "Current Status: ⚠️ victim down" in report.text
    # what each holds, valued as the exporter publishes it; a CSV says nothing of stoplosses on the exchange
    assert re.search(r"^- (fine|victim): [-+][\d.e-]+ \S+/USDT — [\d.]+ USDT, [\d.]+ without a known stoploss "
                     r"on the exchange$", report.text, re.M), report.text


def test_delivery_shape_chats_splitting_photo_and_429_retry(tmp_path, telegram):
    (tmp_path / "tok").write_text(telegram.token)
    config = config_from_mapping({"telegram": {"bot_token_file": "tok", "chat_id": [111, -222], "api_url": telegram.url},
                                  "bots": [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}]}, base=tmp_path)
    slept = []
    notifier = Notifier(config.telegram, sleep=slept.append)
    telegram.fail_with = [(429, {"retry_after": 3}), (502, {})]
    long_text = "\n".join(f"- line {i}: " + "x" * 60 for i in range(200))       # ~14k characters
    assert notifier.send(long_text)
    assert slept[:2] == [3.0, 2.0]                                               # retry_after, then backoff
    messages = telegram.messages()
    by_chat = {}
    for m in messages:
        assert m["parse_mode"] == "HTML" and len(m["text"]) <= 4096
        by_chat.setdefault(m["chat_id"], []).append(m["text"])
    assert set(by_chat) == {111, -222}
    for pieces in by_chat.values():
        assert len(pieces) == 4 and "\n".join(pieces) == long_text              # cut at line boundaries only
    assert notifier.send_photo(b"\x89PNG\r\n\x1a\nfake", caption="Bot Health Report")
    photos = [r for r in telegram.requests if r["method"] == "sendPhoto"]
    assert len(photos) == 2 and "multipart/form-data" in photos[0]["content_type"]
    assert photos[0]["data"]["photo"].startswith(b"\x89PNG") and photos[0]["data"]["chat_id"] == "111"
    assert photos[0]["data"]["caption"] == "Bot Health Report"
    telegram.fail_with = [(400, {})]                   # a 4xx other than 429 is not retried, and is counted
    outcomes = []
    failing = Notifier(config.telegram, sleep=slept.append, on_outcome=outcomes.append)
    assert not failing.send("bad")
    assert failing.counts["failed"] == 1 and outcomes[0] == "failed" and len(slept) == 2


def test_split_message_cuts_a_line_longer_than_the_limit():
    pieces = split_message("a\n" + "b" * 5000 + "\nc")
    assert all(len(p) <= 4096 for p in pieces) and "".join(pieces).replace("\n", "") == "a" + "b" * 5000 + "c"


@pytest.mark.parametrize("at, tz, after, expected", [
    ("08:00", "UTC", "2026-11-25T08:00:00+00:00", "2026-11-26T08:00:00+00:00"),
    ("08:00", "Europe/Berlin", "2026-03-28T08:00:00+00:00", "2026-03-29T06:00:00+00:00"),  # spring forward: CEST
    ("08:00", "Europe/Berlin", "2026-10-24T08:00:00+00:00", "2026-10-25T07:00:00+00:00"),  # fall back: CET
    ("02:30", "Europe/Berlin", "2026-03-28T12:00:00+00:00", "2026-03-29T01:30:00+00:00"),  # in the gap: 03:30 CEST
    ("02:30", "Europe/Berlin", "2026-10-24T12:00:00+00:00", "2026-10-25T00:30:00+00:00"),  # twice: the first
    ("08:00", "America/New_York", "2026-03-08T05:00:00+00:00", "2026-03-08T12:00:00+00:00"),
    ("23:59", "Asia/Tokyo", "2026-11-25T15:00:00+00:00", "2026-11-26T14:59:00+00:00"),
])
def test_next_run_across_dst(at, tz, after, expected):
    assert next_run(at, tz, datetime.fromisoformat(after)).isoformat() == expected


def test_catch_up_rule():
    eight = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    assert due("08:00", "UTC", eight, None) == eight
    assert due("08:00", "UTC", eight, eight.isoformat()) is None                        # sent already
    assert due("08:00", "UTC", eight + CATCH_UP - (eight - eight.replace(minute=0)), None) == eight
    assert due("08:00", "UTC", eight.replace(hour=10, minute=59), None) == eight         # late, within the limit
    assert due("08:00", "UTC", eight.replace(hour=11, minute=1), None) is None           # too late: skip a day
    assert due("08:00", "UTC", eight.replace(hour=7, minute=59), None) is None           # yesterday's is long past


def test_two_remediators_claim_a_report_once(tmp_path):
    assert claim(tmp_path / "claims", "report-2026-11-25T0800") is True
    assert claim(tmp_path / "claims", "report-2026-11-25T0800") is False
    assert claim(tmp_path / "claims", "report-2026-11-26T0800") is True


def test_the_scheduler_sends_the_report_once_across_ha_peers(tmp_path, engine_factory, telegram):
    clock = FakeClock(datetime(2026, 11, 25, 8, 0, 30, tzinfo=timezone.utc).timestamp())
    config = make_config(tmp_path, [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}], telegram_url=telegram.url)
    config = config.model_copy(update={"report": config.report.model_copy(update={
        "enabled": True, "prometheus_url": f"http://127.0.0.1:{free_port()}"})})
    peers = [engine_factory(config, clock=clock, data_dir=tmp_path / f"peer{i}") for i in range(2)]
    for peer in peers:
        peer.periodic.maybe_report()
        peer.periodic.maybe_report()
    wait_for(lambda: telegram.messages(), what="the report")
    time.sleep(0.5)
    reports = [m for m in telegram.messages() if "Bot Health Report" in m["text"]]
    assert len(reports) == 1 and "unreachable" in reports[0]["text"]


def report_engine(tmp_path, engine_factory, telegram, clock):
    """A remediator whose daily report is 12 hours away (FakeClock starts at 08:00 UTC): only what the test
    sends is sent."""
    config = make_config(tmp_path, [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}], telegram_url=telegram.url)
    config = config.model_copy(update={"report": config.report.model_copy(update={
        "enabled": True, "at": "20:00", "timezone": "UTC", "prometheus_url": f"http://127.0.0.1:{free_port()}"})})
    return engine_factory(config, clock=clock)


def test_a_day_with_a_run_of_every_playbook_reports_each_in_words(tmp_path, engine_factory, telegram):
    """The verb table lacked `start` and `exchange_rate_limit`: a day with either raised KeyError in the pool
    and no report went out. The words now come from the playbook registry."""
    from botwatch.remediator.playbooks import PLAYBOOKS
    clock = FakeClock()
    engine = report_engine(tmp_path, engine_factory, telegram, clock)
    for name in PLAYBOOKS:
        engine.ledger.record("a", name, clock.now - 60, "success", f"{name} done")
    assert engine.periodic.send_report()
    [report] = [m["text"] for m in telegram.messages() if "Bot Health Report" in m["text"]]
    for playbook in PLAYBOOKS.values():
        assert f"{playbook.verb} a" in report, playbook.name
    assert 'botwatch_reports_total{outcome="success"} 1.0' in client_metrics(engine)


def client_metrics(engine) -> str:
    from prometheus_client import generate_latest
    return generate_latest(engine.metrics.registry).decode()


def test_a_report_that_cannot_be_built_is_said_counted_and_tried_again(tmp_path, engine_factory, telegram,
                                                                         monkeypatch):
    from botwatch.remediator.tell import report as report_module
    clock = FakeClock()
    engine = report_engine(tmp_path, engine_factory, telegram, clock)
    monkeypatch.setattr(report_module, "build_report", lambda *a, **k: 1 / 0)
    assert not engine.periodic.send_report()
    assert 'botwatch_reports_total{outcome="failed"} 1.0' in client_metrics(engine)
    assert any("morning report failed" in m["text"] and "ZeroDivisionError" in m["text"] for m in telegram.messages())
    ops = (tmp_path / "data" / "memory" / "bot-operations.md")
    assert ops.exists() and "report" in ops.read_text() and "failed" in ops.read_text()
    monkeypatch.undo()
    clock.advance(599)
    engine.periodic.maybe_report()
    assert 'botwatch_reports_total{outcome="success"} 0.0' in client_metrics(engine)
    clock.advance(1)
    engine.periodic.maybe_report()                       # the retry, in the pool
    wait_for(lambda: 'botwatch_reports_total{outcome="success"} 1.0' in client_metrics(engine), what="the retry")
    assert any("Bot Health Report" in m["text"] for m in telegram.messages())


def test_a_bot_paused_half_an_hour_has_the_uptime_of_one_never_paused_and_the_report_says_when(
        tmp_path, prometheus):
    """`paused` was down 02:00–02:30 inside a maintenance window: its tradingbot_up says 0 there, and the
    mixin's bot:tradingbot_up:unpaused (backfilled here as the recording rule writes it) leaves those
    samples out. Its 24h uptime is that of `steady`, never paused; the report names the window."""
    from botwatch.remediator.ledger.holds import Holds
    end = int(time.time()) // STEP * STEP
    start_window = end - 86400
    held_from, held_to = start_window + 2 * 3600, start_window + 2 * 3600 + 1800
    lines = []
    for name in ("tradingbot_up", "bot:tradingbot_up:unpaused"):
        lines.append(f"# TYPE {name} gauge")
        for t in range(end - HOURS * 3600, end + 1, STEP):
            for bot in ("steady", "paused"):
                held = bot == "paused" and held_from <= t < held_to
                if name == "bot:tradingbot_up:unpaused" and held:
                    continue                       # the rule's `unless tradingbot_paused == 1`
                lines.append(f'{name}{{bot="{bot}",host="local"}} {0 if held else 1} {t}')
    source = tmp_path / "history.om"
    source.write_text("\n".join(lines) + "\n# EOF\n")
    tsdb = tmp_path / "tsdb"
    result = subprocess.run([require_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source),
                             str(tsdb)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    url = prometheus("global: {scrape_interval: 1h}\n", tsdb=tsdb)
    config = config_from_mapping({"report": {"timezone": "UTC"}, "bots": [
        {"name": "steady", "pidfile": "s.pid", "data_file": "s.csv"},
        {"name": "paused", "pidfile": "p.pid", "data_file": "p.csv"}]}, base=tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    pause = Holds(ledger).add("bot", "paused", "maintenance", "weekly upgrade", "maintenance window", held_from,
                              held_to, occurrence=f"weekly upgrade@{held_from}")
    Holds(ledger).end(pause.id, held_to, "the window closed")
    text = build_report(config, url, ledger, 86400, now=end, verbs=VERBS).text
    hhmm = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M")     # noqa: E731
    assert "- steady: 100.0%" in text
    assert (f"- paused: 100.0% (paused {hhmm(held_from)}–{hhmm(held_to)}, maintenance 'weekly upgrade'; "
            "not counted)") in text, text
    assert "Current Status: ✅ All bots operational" in text
