"""The equity peak from a hand-worked fill sequence — peak, trough, recovery — as the exporter publishes it,
and kept through a kill -9 of the exporter (TradingBotDrawdown's promtool test reads the same figures)."""

import os

import pytest

from tests.conftest import http_get, parse_metrics, sample, wait_for, write_config

HEADER = "timestamp,trade_id,symbol,side,price,qty,fee\n"
# buy 10 @ 100: equity 1000 | sell 5 @ 120: +100 realized, 5 left marked 120: +100 -> 1200, the peak |
# buy 5 @ 90: 10 at avg 95 marked 90: -50 -> 1050, 150 (12.5%) below the peak | sell 10 @ 110: +150 -> 1250
FILLS = ["2026-06-01T00:00:00Z,t1,ETH/USDT,buy,100,10,0", "2026-06-01T00:01:00Z,t2,ETH/USDT,sell,120,5,0",
         "2026-06-01T00:02:00Z,t3,ETH/USDT,buy,90,5,0", "2026-06-01T00:03:00Z,t4,ETH/USDT,sell,110,10,0"]


def figures(url: str) -> tuple:
    page = parse_metrics(http_get(url).decode())
    return tuple(sample(page, name, bot="swing") for name in
                 ("tradingbot_equity", "tradingbot_equity_peak", "tradingbot_max_drawdown_quote"))


def test_peak_trough_recovery_and_the_peak_survives_a_kill_9(tmp_path, exporter_process):
    csv = tmp_path / "swing.csv"
    (tmp_path / "swing.pid").write_text(f"{os.getpid()}\n")
    config = write_config(tmp_path / "bots.json", [{
        "name": "swing", "pidfile": str(tmp_path / "swing.pid"), "data_file": str(csv), "check_interval": 0.2,
        "starting_balance": 1000, "max_drawdown": "10%", "drawdown_window": "1d"}])

    def fill(count: int) -> None:
        csv.write_text(HEADER + "".join(line + "\n" for line in FILLS[:count]))

    fill(1)
    url = exporter_process(config)
    wait_for(lambda: figures(url) == (1000, 1000, 100), what="equity 1000, its own peak")
    fill(2)
    wait_for(lambda: figures(url) == (1200, 1200, 120), what="the peak at 1200")
    fill(3)
    wait_for(lambda: figures(url) == (1050, 1200, 120), what="the trough: 150 below a peak of 1200")

    exporter_process.processes[-1].kill()           # kill -9: no clean stop, no last save
    exporter_process.processes[-1].wait(timeout=10)
    url = exporter_process(config)
    assert figures(url) == (1050, 1200, 120)        # its first page: the trough is still under the old peak

    fill(4)
    wait_for(lambda: figures(url) == (1250, 1250, 125), what="recovered to a new peak")
