"""The whole /metrics page for recorded fixtures, diffed against a committed golden file.

Regenerate after an intended change: UPDATE_GOLDEN=1 pytest tests/exporter/test_collector.py
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from botwatch.core.checks import BotCheck
from botwatch.core.config import config_from_mapping
from botwatch.exporter.app import create_registry
from botwatch.exporter.monitor import Monitor
from botwatch.exporter.page import MetricsPage
from tests.conftest import require_tool

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "metrics.prom"
NOW = 1780300000.0
VOLATILE = re.compile(r"^(botwatch_exporter_(scrape|check)_duration_seconds(\{[^}]*\})?) .*$", re.M)


def fake_proc(root: Path, pids: dict[int, str]) -> Path:
    """A /proc holding only the processes given, as pid -> one-letter state."""
    for pid, state in pids.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} (python3) {state} 1 1 1 0 -1\n")
    return root


@pytest.fixture
def fleet(tmp_path):
    for name in os.listdir(HERE / "fixtures"):
        shutil.copy(HERE / "fixtures" / name, tmp_path / name)
        os.utime(tmp_path / name, (NOW - 60, NOW - 60))
    (tmp_path / "doge-long.pid").write_text("4242\n")
    (tmp_path / "btc-optimized.pid").write_text("4343\n")
    proc = fake_proc(tmp_path / "proc", {4242: "S", 4343: "Z"})
    config = config_from_mapping({"bots": [
        {"name": "doge-long", "type": "spot", "check_interval": 300, "pidfile": "doge-long.pid",
         "data_file": "doge-long.csv", "log_file": "doge-long.log", "starting_balance": 1000,
         "expected_trades_per_hour": {"min": 1, "max": 120}, "stale_after": "15m", "max_drawdown": "2%"},
        {"name": "btc-optimized", "type": "futures", "check_interval": 60, "pidfile": "btc-optimized.pid",
         "data_file": "btc-optimized.csv", "starting_balance": 5000},
    ]}, base=tmp_path)
    monitor = Monitor(config, check_factory=lambda bot: BotCheck(bot, clock=lambda: NOW, proc=proc))
    monitor.run_once()
    yield monitor
    monitor.stop()


def render(monitor) -> str:
    """The page /metrics serves, joined from per-bot pieces: byte for byte one render of every bot."""
    page = MetricsPage(monitor)
    served = VOLATILE.sub(r"\1 0.0", page.page(None)[0].decode())
    assert served == VOLATILE.sub(r"\1 0.0", generate_latest(create_registry(monitor)).decode())
    return served


def test_the_openmetrics_page_is_one_render_too(fleet):
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
    page = MetricsPage(fleet)
    for name, status in fleet.snapshot().items():
        page.update(name, status)        # what the monitor does after each check
    served, content_type = page.page("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert VOLATILE.sub(r"\1 0.0", served.decode()) == \
        VOLATILE.sub(r"\1 0.0", openmetrics_latest(create_registry(fleet)).decode())
    assert served.endswith(b"# EOF\n") and served.count(b"# EOF") == 1


def test_metrics_page_matches_the_golden_file(fleet):
    text = render(fleet)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_golden_values_are_the_hand_worked_ones(fleet):
    registry = create_registry(fleet)
    value = lambda name, labels: registry.get_sample_value(name, {**labels, "host": "local"})
    # doge: long 2000 @ 0.16, sell 500 @ 0.18: +10 closed, fees 0.41; 1500 left marked at 0.18: +30
    assert value("tradingbot_realized_pnl", {"bot": "doge-long"}) == pytest.approx(10 - 0.41)
    assert value("tradingbot_unrealized_pnl", {"bot": "doge-long"}) == pytest.approx(30)
    assert value("tradingbot_equity", {"bot": "doge-long"}) == pytest.approx(1000 + 9.59 + 30)
    assert value("tradingbot_position", {"bot": "doge-long", "symbol": "DOGE/USDT"}) == 1500
    # money at risk: 1500 DOGE at 0.18 = 270 USDT, and a CSV says nothing of a stoploss on the exchange
    assert value("tradingbot_open_positions", {"bot": "doge-long"}) == 1
    assert value("tradingbot_exposure_quote", {"bot": "doge-long"}) == pytest.approx(270)
    assert value("tradingbot_unprotected_exposure_quote", {"bot": "doge-long"}) == pytest.approx(270)
    assert value("tradingbot_position_protected", {"bot": "doge-long", "symbol": "DOGE/USDT"}) is None
    # its peak is its only equity so far; 2% of it may go
    assert value("tradingbot_equity_peak", {"bot": "doge-long"}) == pytest.approx(1039.59)
    assert value("tradingbot_max_drawdown_quote", {"bot": "doge-long"}) == pytest.approx(1039.59 * 0.02)
    assert value("tradingbot_equity_peak", {"bot": "btc-optimized"}) is None      # corrupt: no figure to peak
    assert value("tradingbot_api_errors_total", {"bot": "doge-long", "kind": "auth"}) == 1
    assert value("tradingbot_api_errors_total", {"bot": "doge-long", "kind": "rate_limit"}) == 1
    assert value("tradingbot_up", {"bot": "doge-long"}) == 1
    # btc: a zombie is down; a duplicate trade id makes the file invalid and is not counted
    assert value("tradingbot_up", {"bot": "btc-optimized"}) == 0
    assert value("tradingbot_data_file_valid", {"bot": "btc-optimized"}) == 0
    assert value("tradingbot_data_file_problems", {"bot": "btc-optimized", "check": "duplicate_trade_id"}) == 1
    assert value("tradingbot_trades_total", {"bot": "btc-optimized"}) == 2
    assert value("tradingbot_realized_pnl", {"bot": "btc-optimized"}) == pytest.approx(10 - 1.19)


def test_golden_page_passes_promtool_check_metrics(fleet):
    lint = subprocess.run([require_tool("promtool"), "check", "metrics"], input=render(fleet).encode(),
                          capture_output=True)
    assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint.stderr


def test_a_check_that_raises_does_not_blank_the_other_bots(fleet):
    broken = fleet.checks["btc-optimized"]
    broken.run = lambda: (_ for _ in ()).throw(RuntimeError("a bug"))
    fleet.results.clear()
    fleet.run_once()
    registry = create_registry(fleet)
    assert registry.get_sample_value("tradingbot_up", {"bot": "doge-long", "host": "local"}) == 1
    assert registry.get_sample_value("botwatch_exporter_check_failures_total", {"bot": "btc-optimized"}) == 1
    assert registry.get_sample_value("tradingbot_info", {"bot": "btc-optimized", "host": "local", "kind": "futures",
                                                         "runtime": "process", "preset": "", "exchange": "",
                                                         "quote": ""}) == 1


def test_every_bot_series_carries_its_host(tmp_path):
    from botwatch.core.config import config_from_mapping
    from botwatch.exporter.monitor import Monitor
    (tmp_path / "a.csv").write_text("timestamp,trade_id,symbol,side,price,qty,fee\n")
    config = config_from_mapping({"bots": [
        {"name": "here", "health_endpoint": "http://127.0.0.1:9/health", "data_file": "a.csv"},
        {"name": "there", "host": "vps-2", "health_endpoint": "http://127.0.0.1:9/health", "data_file": "a.csv"}]},
        base=tmp_path)
    monitor = Monitor(config)
    try:
        monitor.run_once()
        families = list(create_registry(monitor).collect())
    finally:
        monitor.stop()
    hosts = {(sample.labels["bot"], sample.labels.get("host")) for family in families if family.name.startswith("tradingbot_")
             for sample in family.samples}
    assert hosts == {("here", "local"), ("there", "vps-2")}


@pytest.mark.parametrize("preset", [None, "freqtrade"])
def test_a_trade_file_not_there_yet_is_missing_not_corrupt_and_one_that_vanished_is_corrupt(tmp_path, preset):
    """A bot that has not written its first trade: tradingbot_data_file_present 0 and no validity sample (so
    no TradingBotDataCorrupted, no restore); once the file existed, its vanishing is corruption, said as such."""
    import sqlite3
    from botwatch.exporter.collector import bot_families
    (tmp_path / "me.pid").write_text(f"{os.getpid()}\n")
    data = tmp_path / ("trades.sqlite" if preset else "trades.csv")
    bot = {"name": "newbie", "pidfile": "me.pid", "data_file": data.name}
    if preset:
        bot["preset"] = preset
    config = config_from_mapping({"bots": [bot]}, base=tmp_path)
    check = BotCheck(config.bots[0])

    def metrics():
        status = check.run()
        return status, {(s.name, s.labels.get("check")): s.value
                        for family in bot_families(config.bots[0], status) for s in family.samples}

    status, seen = metrics()
    assert seen[("tradingbot_data_file_present", None)] == 0 and ("tradingbot_data_file_valid", None) not in seen
    assert "does not exist yet" in status.datafile.first_problem
    if preset:
        FREQTRADE_SCHEMA(data)
    else:
        data.write_text("timestamp,trade_id,symbol,side,price,qty,fee\n2026-11-25T08:00:00Z,t1,BTC/USDT,buy,100,1,0.1\n")
    _, seen = metrics()
    assert (seen[("tradingbot_data_file_present", None)], seen[("tradingbot_data_file_valid", None)]) == (1, 1)
    data.unlink()
    status, seen = metrics()
    assert (seen[("tradingbot_data_file_present", None)], seen[("tradingbot_data_file_valid", None)]) == (0, 0)
    assert seen[("tradingbot_data_file_problems", "missing")] == 1 and "vanished" in status.datafile.first_problem
    check.close()


def FREQTRADE_SCHEMA(path):
    """An empty database with the tables and columns Freqtrade's store reads."""
    import sqlite3
    from botwatch.core.stores.freqtrade_db import FreqtradeStore
    with sqlite3.connect(path) as db:
        for table, columns in FreqtradeStore.SCHEMA.items():
            db.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    db.close()


def test_tradingbot_paused_is_absent_while_unknown_and_one_reason_per_bot_once_the_remediator_said(fleet):
    assert "tradingbot_paused" not in render(fleet)           # no remediator asked: unknown, not "not paused"
    fleet.paused = {"doge-long": "maintenance"}
    page = render(fleet)
    for reason in ("pause", "maintenance", "operator_stop"):
        assert (f'tradingbot_paused{{bot="doge-long",host="local",reason="{reason}"}} '
                f'{1.0 if reason == "maintenance" else 0.0}') in page
        assert f'tradingbot_paused{{bot="btc-optimized",host="local",reason="{reason}"}} 0.0' in page


def test_the_exporter_reads_the_pauses_from_the_remediator_and_keeps_them_when_it_is_away(fleet):
    from botwatch.core.intent_client import IntentError
    from botwatch.exporter.pauses import PauseFeed

    class Remediator:
        answer: object = [{"bots": ["btc-optimized"], "reason": "operator_stop"}]

        def pauses(self):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    remediator = Remediator()
    feed = PauseFeed(fleet, remediator)
    feed.step()
    assert fleet.paused == {"btc-optimized": "operator_stop"}
    remediator.answer = IntentError("the remediator at http://127.0.0.1:9818 can't be reached")
    feed.step()
    assert fleet.paused == {"btc-optimized": "operator_stop"}   # a failed poll does not end a pause
    remediator.answer = []
    feed.step()
    assert fleet.paused == {}
