"""A bot's records against its exchange account, on the strict local exchange (signed GET /api/v3/account,
recvWindow checked against its clock): unchanged, nothing over an hour of (fake) time; 0.5 ETH sold by hand,
one TradingBotPositionDrift with the symbol and both amounts through real Prometheus."""

import json
import os
import urllib.parse

import pytest
import yaml

from botwatch.core import mixin
from botwatch.core.config import config_from_mapping
from botwatch.exporter.drift import DriftChecks
from botwatch.exporter.monitor import Monitor
from botwatch.up.standins.localexchange import LocalExchange
from tests.conftest import http_get, parse_metrics, wait_for, write_config

SPOT = {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}   # the local exchange has no margin API
FILLS = ("timestamp,trade_id,symbol,side,price,qty,fee\n"
         "2026-06-01T00:00:00Z,e1,ETH/USDT,buy,3000,1.5,0\n"
         "2026-06-01T00:01:00Z,b1,BTC/USDT,buy,90000,0.01,0\n")


@pytest.fixture
def exchange():
    made = LocalExchange()
    made.balances = {"ETH": 1.5, "BTC": 0.01, "USDT": 500.0}
    yield made
    made.close()


def bot(tmp_path, exchange) -> dict:
    (tmp_path / "key").write_text(f"{exchange.api_key}:{exchange.secret}\n")
    (tmp_path / "bot.csv").write_text(FILLS)
    (tmp_path / "bot.pid").write_text(f"{os.getpid()}\n")
    return {"name": "eth-bot", "pidfile": str(tmp_path / "bot.pid"), "data_file": str(tmp_path / "bot.csv"),
            "replay": {"exchange": "binance", "symbols": ["ETH/USDT", "BTC/USDT"], "credentials_file": str(tmp_path / "key"),
                       "api_url": exchange.url, "options": SPOT}}


def test_unchanged_balances_are_no_drift_at_each_look_of_an_hour_then_a_hand_sale_is(tmp_path, exchange):
    config = config_from_mapping({"bots": [bot(tmp_path, exchange)]}, base=tmp_path)
    monitor = Monitor(config)
    monitor.run_once()
    now = [1_800_000_000.0]
    checks = DriftChecks(monitor, clock=lambda: now[0])
    try:
        looks = []
        for _ in range(5):                     # at 0, 15, 30, 45 and 60 minutes
            assert checks.step() == pytest.approx(900)
            [(_, drifts)] = checks.recent()
            looks.append({d.symbol: (d.records, d.exchange) for d in drifts})
            now[0] += 900
        assert looks == [{"ETH/USDT": (1.5, 1.5), "BTC/USDT": (0.01, 0.01)}] * 5
        assert exchange.requests["/api/v3/account"] == 5          # one signed call a look, no more
        exchange.balances["ETH"] = 1.0                            # 0.5 ETH sold on the account by hand
        checks.step()
        [(_, drifts)] = checks.recent()
        assert {d.symbol: d.difference for d in drifts} == {"ETH/USDT": pytest.approx(-0.5), "BTC/USDT": 0}
        now[0] += 3 * 900 + 1                                     # no look for three intervals: no figure
        assert checks.recent() == []
    finally:
        monitor.stop()


def test_a_hand_sale_pages_once_with_the_symbol_and_both_amounts(tmp_path, exchange, exporter_process, prometheus):
    exchange.balances["ETH"] = 1.0
    url = exporter_process(write_config(tmp_path / "bots.json", [bot(tmp_path, exchange)]))
    wait_for(lambda: ("tradingbot_position_drift", frozenset({("bot", "eth-bot"), ("host", "local"), ("symbol", "ETH/USDT")}))
             in parse_metrics(http_get(url).decode()), timeout=30, what="the first look at the account")
    rules = tmp_path / "rules.yml"
    rules.write_text(mixin.render(mixin.FAST))
    prom = prometheus(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "botwatch-exporter", "static_configs": [{"targets": [
            url.removeprefix("http://").removesuffix("/metrics")]}]}]}))

    def firing():
        alerts = json.loads(http_get(prom + "/api/v1/alerts"))["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "TradingBotPositionDrift" and a["state"] == "firing"]

    [alert] = wait_for(firing, timeout=60, what="TradingBotPositionDrift firing")
    assert alert["labels"]["symbol"] == "ETH/USDT" and alert["labels"]["bot"] == "eth-bot"
    assert "the exchange holds 1 of ETH/USDT's base asset, its records 1.5" in alert["annotations"]["description"]
    query = urllib.parse.quote('ALERTS{alertname="TradingBotPositionDrift"}')
    assert len(json.loads(http_get(f"{prom}/api/v1/query?query={query}"))["data"]["result"]) == 1   # BTC agrees
