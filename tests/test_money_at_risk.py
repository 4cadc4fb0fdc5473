"""Money at risk, with real Freqtrade 2026.9 dry-runs holding open trades on the local exchange (one with its
stoplosses on the exchange, one without) and a flat bot, under `botwatch up --timings fast` with the real
Prometheus and Alertmanager. Remediation is a dry run here, so a killed bot stays down and the pages show.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from botwatch.up.standins.localexchange import DEMO_STRATEGY, LocalExchange
from tests.conftest import BOTWATCH, ROOT, http_get, parse_metrics, sample, wait_for
from tests.test_e2e import Stack, paperbot
from tests.test_freqtrade import Freqtrade

pytestmark = pytest.mark.slow

# the demo's strategy, but holding: no ROI exit, a stoploss far below, so both trades stay open
HOLD_STRATEGY = (DEMO_STRATEGY.replace("class BotwatchDemo", "class BotwatchHold")
                 .replace('minimal_roi = {"0": 0.002}', 'minimal_roi = {"0": 100}').replace("stoploss = -0.002", "stoploss = -0.5"))
assert "BotwatchHold" in HOLD_STRATEGY and '{"0": 100}' in HOLD_STRATEGY and "-0.5" in HOLD_STRATEGY


def holding_freqtrade(folder, exchange, name: str, stoploss_on_exchange: bool) -> Freqtrade:
    folder.mkdir()
    ft = Freqtrade(folder, exchange)
    (folder / "strategies" / "botwatch_hold.py").write_text(HOLD_STRATEGY)
    config = json.loads(ft.config.read_text())
    config.update(strategy="BotwatchHold", order_types={
        "entry": "limit", "exit": "limit", "stoploss": "limit", "stoploss_on_exchange": stoploss_on_exchange})
    ft.config.write_text(json.dumps(config, indent=1))
    ft.name = name
    return ft


@pytest.fixture(scope="module")
def held(tmp_path_factory, freqtrade_python):
    folder = tmp_path_factory.mktemp("money")
    exchange = LocalExchange()
    guarded = holding_freqtrade(folder / "guarded", exchange, "ft-guarded", True)
    exposed = holding_freqtrade(folder / "exposed", exchange, "ft-exposed", False)
    (folder / "bots").mkdir()
    flat = paperbot("flat", folder / "bots", trade_interval=3600)      # its first fill would come in an hour
    bots = [dict(ft.bot(), name=ft.name) for ft in (guarded, exposed)] + [flat]
    (folder / "bots.json").write_text(json.dumps({"bots": bots, "remediation": {"dry_run": True},
                                                  "backup": {"dir": str(folder / "backups")}}))
    # Freqtrade configures no log file when it sees pytest's PYTEST_VERSION: run it as users do
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    process = subprocess.Popen(BOTWATCH + ["up", "--config", str(folder / "bots.json"), "--timings", "fast",
                                           "--state-dir", str(folder / "stack")], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env)
    try:
        stack = Stack(folder / "stack", process)
        stack.guarded, stack.exposed, stack.flat = guarded, exposed, flat
        for ft in (guarded, exposed):
            wait_for(lambda: ft.api("ping") == {"status": "pong"}, timeout=120, what=f"{ft.name}'s API")
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        for ft in (guarded, exposed):
            pid = ft.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
        exchange.close()
        assert process.returncode == 0, output


def metric(stack, name: str, bot: str, **labels) -> float | None:
    return sample(parse_metrics(http_get(stack.info["exporter"] + "/metrics").decode()), name, bot=bot, **labels)


def holding(ft: Freqtrade, protected: bool) -> list[dict] | None:
    """Its open trades once both have filled and (with stoploss_on_exchange) each has its stop open."""
    trades = ft.api("status")
    if len(trades) != 2 or not all(t["amount"] > 0 for t in trades):
        return None
    if protected != all(t["stoploss_last_update_timestamp"] is not None for t in trades):
        return None
    return trades


def pages(stack, alertname: str, bot: str) -> list[tuple[float, str]]:
    """Alertmanager's Telegram messages about `bot` firing `alertname`: (when the outbox got it, its text)."""
    return [(m["time"], m["text"]) for m in stack.outbox()
            if alertname in m.get("text", "") and bot in m["text"] and "FIRING" in m["text"]]


def test_exposure_and_protection_are_freqtrades_and_a_kill_pages_at_once_only_where_money_is_unprotected(held):
    for ft, protected in ((held.guarded, True), (held.exposed, False)):
        trades = wait_for(lambda: holding(ft, protected), timeout=180, interval=0.5,
                          what=f"{ft.name} holding two filled trades, stops on the exchange: {protected}")

        def same_as_freqtrade():
            status = ft.api("status")
            notional = sum(t["amount"] * t["current_rate"] for t in status)
            shown = metric(held, "tradingbot_exposure_quote", ft.name)
            return (metric(held, "tradingbot_open_positions", ft.name) == 2 and shown == pytest.approx(notional, rel=0.01)
                    and metric(held, "tradingbot_unprotected_exposure_quote", ft.name) == (0 if protected else shown)
                    and all(metric(held, "tradingbot_position_protected", ft.name, symbol=t["pair"]) == int(protected)
                            for t in status))

        wait_for(same_as_freqtrade, timeout=30, interval=0.5, what=f"{ft.name}'s exposure as its /api/v1/status says")
        assert {t["pair"] for t in trades} == {"BTC/USDT", "ETH/USDT"}
    assert metric(held, "tradingbot_open_positions", "flat") == 0
    assert metric(held, "tradingbot_exposure_quote", "flat") == 0
    wait_for(lambda: held.query('tradingbot_info{bot="ft-exposed",quote="USDT"}'), what="its quote currency scraped")

    killed_at = time.time()
    for ft in (held.guarded, held.exposed):
        os.kill(ft.pid(), signal.SIGKILL)
    os.kill(int(open(held.flat["pidfile"]).read()), signal.SIGKILL)

    # the exposed one pages at once (two failed checks, one evaluation, Alertmanager's group_wait) ...
    [(when, page)] = wait_for(lambda: pages(held, "TradingBotDownWithExposure", "ft-exposed"), timeout=20,
                              what="TradingBotDownWithExposure for ft-exposed on Telegram")
    assert when - killed_at < 20, when - killed_at
    assert "💰 2 open positions" in page and "USDT; 2 without a known stoploss on the exchange" in page, page
    # ... the guarded one and the flat one do not: they keep TradingBotDownCritical's wait (20 s at fast timings)
    assert not held.firing("TradingBotDownWithExposure", bot="ft-guarded")
    assert not held.firing("TradingBotDownWithExposure", bot="flat")
    assert not pages(held, "TradingBotDownCritical", "flat") and not pages(held, "TradingBotDownCritical", "ft-guarded")
    for bot, said in (("flat", "💰 flat (no open position)"),
                      ("ft-guarded", "USDT; each with a stoploss on the exchange")):
        [(when, text)] = wait_for(lambda: pages(held, "TradingBotDownCritical", bot), timeout=60,
                                  what=f"{bot}'s critical page")
        assert when - killed_at >= 20, f"{bot} paged critical {when - killed_at:.1f}s after the kill"
        assert said in text, text
    assert not pages(held, "TradingBotDownWithExposure", "ft-guarded") and not pages(held, "TradingBotDownWithExposure", "flat")
