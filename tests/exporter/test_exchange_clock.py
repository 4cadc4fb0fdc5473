"""This host's clock against an exchange's: the exporter reads the local exchange's /api/v3/time (through
ccxt, as for Binance) and publishes the offset; real Prometheus with the fast rules pages ExchangeClockSkew
for an exchange 2 s ahead and not for one in step."""

import json
import urllib.parse

import pytest
import yaml

from botwatch.core import mixin
from botwatch.exporter.clocks import measure
from botwatch.up.standins.localexchange import LocalExchange
from tests.conftest import ROOT, http_get, parse_metrics, wait_for, write_config

SPOT = {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}   # the local exchange has no margin API


@pytest.fixture
def exchanges():
    made = []
    yield lambda: made.append(LocalExchange()) or made[-1]
    for exchange in made:
        exchange.close()


def bot_on(tmp_path, exchange: LocalExchange, name: str) -> dict:
    (tmp_path / f"{name}-key").write_text(f"{exchange.api_key}:{exchange.secret}\n")
    return {"name": name, "health_endpoint": "http://127.0.0.1:9/health", "data_file": str(tmp_path / f"{name}.csv"),
            "replay": {"exchange": "binance", "symbols": ["BTC/USDT"], "credentials_file": str(tmp_path / f"{name}-key"),
                       "api_url": exchange.url, "options": SPOT}}


def offset(url: str) -> float | None:
    samples = parse_metrics(http_get(url).decode())
    return samples.get(("tradingbot_exchange_clock_offset_seconds", frozenset({("exchange", "binance")})))


def test_the_offset_is_the_exchanges_skew_and_2s_pages_while_0s_does_not(tmp_path, exchanges, exporter_process,
                                                                         prometheus):
    ahead, in_step = exchanges(), exchanges()
    ahead.clock_skew = 2.0
    urls = {}
    for name, exchange in (("ahead", ahead), ("in-step", in_step)):
        folder = tmp_path / name
        folder.mkdir()
        urls[name] = exporter_process(write_config(folder / "bots.json", [bot_on(folder, exchange, name)]))
    wait_for(lambda: offset(urls["ahead"]) is not None and offset(urls["in-step"]) is not None, timeout=30,
             what="both exchanges' clocks looked at")
    assert offset(urls["ahead"]) == pytest.approx(2.0, abs=0.05)
    assert offset(urls["in-step"]) == pytest.approx(0.0, abs=0.05)
    assert ahead.requests.get("/api/v3/time", 0) >= 5          # the median of several round trips, not one

    rules = tmp_path / "rules.yml"
    rules.write_text(mixin.render(mixin.FAST))
    targets = [url.removeprefix("http://").removesuffix("/metrics") for url in urls.values()]
    prom = prometheus(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                      "rule_files": [str(rules)],
                                      "scrape_configs": [{"job_name": "botwatch-exporter",
                                                          "static_configs": [{"targets": targets}]}]}))
    query = prom + "/api/v1/query?query=" + urllib.parse.quote('ALERTS{alertname="ExchangeClockSkew",alertstate="firing"}')
    firing = wait_for(lambda: json.loads(http_get(query))["data"]["result"], timeout=60, what="ExchangeClockSkew firing")
    assert [alert["metric"]["instance"] for alert in firing] == [targets[0]]
    # the fleet overview's clock panel reads these series (the demo stacks name no exchange: it is run here)
    fleet = json.loads((ROOT / "grafana" / "dashboards" / "fleet.json").read_text())
    exprs = [t["expr"] for panel in fleet["panels"] for t in panel["targets"] if "exchange_clock" in t["expr"]]
    assert exprs
    for expr in exprs:
        answer = json.loads(http_get(prom + "/api/v1/query?query=" + urllib.parse.quote(expr)))["data"]["result"]
        assert len(answer) == 2, (expr, answer)


def test_the_median_round_trip_is_corrected_by_half():
    """A clock 3 s behind, answers taking 0.4 s (0.1 out, 0.3 back) save one slow outlier: the offset is the
    exchange's time against each trip's midpoint, the median of five."""
    now = [1000.0]
    trips = iter([(0.1, 0.3), (0.1, 0.3), (2.0, 0.1), (0.1, 0.3), (0.1, 0.3)])

    def clock():
        return now[0]

    def fetch_ms():
        out, back = next(trips)
        now[0] += out
        server = now[0] - 3.0
        now[0] += back
        return int(server * 1000)

    look = measure(fetch_ms, clock)
    assert look.offset == pytest.approx(-3.1, abs=1e-6)       # midpoint 0.2 s into a trip the server saw at 0.1 s
    assert look.rtt == pytest.approx(0.4)
