"""A real Freqtrade 2026.9 in dry-run, trading on the local exchange, watched and recovered by `botwatch up`
at fast timings with the real Prometheus and Alertmanager: its figures are Freqtrade's own; kill -9, a
frozen process (SIGSTOP), a stop through its API and API-key errors each get the right response.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from botwatch.core.liveness import process_alive
from botwatch.up.demo import freqtrade_cmdline
from botwatch.up.standins.localexchange import DEMO_STRATEGY, LocalExchange, freqtrade_config
from tests.conftest import BOTWATCH, FREQTRADE_VENV, ROOT, free_port, http_get, parse_metrics, sample, wait_for
from tests.test_e2e import Stack

pytestmark = pytest.mark.slow

AUTH = ("botwatch", "local-secret")


class Freqtrade:
    def __init__(self, folder: Path, exchange: LocalExchange, price_side: str = "other"):
        self.folder = folder
        self.port = free_port()
        self.db = folder / "tradesv3.dryrun.sqlite"
        self.log = folder / "freqtrade.log"
        self.config = folder / "ft-live-config.json"          # its path marks the process (process_cmdline)
        (folder / "strategies").mkdir()
        (folder / "user_data").mkdir()
        (folder / "strategies" / "botwatch_demo.py").write_text(DEMO_STRATEGY)
        config = freqtrade_config(exchange.url, self.port, f"sqlite:///{self.db}", *AUTH)
        config.update(user_data_dir=str(folder / "user_data"), strategy="BotwatchDemo",
                      strategy_path=str(folder / "strategies"))
        for side in ("entry_pricing", "exit_pricing"):      # "same": a limit order that waits for the price
            config[side]["price_side"] = price_side
        self.config.write_text(json.dumps(config, indent=1))
        (folder / "api-auth").write_text(":".join(AUTH) + "\n")
        self.argv = [str(FREQTRADE_VENV / "bin" / "freqtrade"), "trade", "--config", str(self.config),
                     "--logfile", str(self.log)]

    def bot(self) -> dict:
        return {"name": "ft-live", "preset": "freqtrade", "check_interval": 1, "process_cmdline": freqtrade_cmdline(self.config),
                "api_url": f"http://127.0.0.1:{self.port}", "api_auth_file": str(self.folder / "api-auth"),
                "data_file": str(self.db), "log_file": str(self.log), "start_command": self.argv,
                "health_timeout": "2s", "stop_timeout": "3s", "stuck_after": "6s", "starting_balance": 1000}

    def api(self, endpoint: str, method: str = "get"):
        response = getattr(requests, method)(f"http://127.0.0.1:{self.port}/api/v1/{endpoint}", auth=AUTH, timeout=5)
        response.raise_for_status()
        return response.json()

    def pid(self) -> int | None:
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(self.config).encode() in argv and process_alive(int(entry.name)):
                return int(entry.name)
        return None


@pytest.fixture(scope="module")
def live(tmp_path_factory, freqtrade_python):
    folder = tmp_path_factory.mktemp("freqtrade")
    exchange = LocalExchange()
    ft = Freqtrade(folder, exchange)
    (folder / "bots.json").write_text(json.dumps({
        "bots": [ft.bot()], "remediation": {"verify_after": "10s", "backoff": ["5s", "10s", "20s"]},
        "backup": {"dir": str(folder / "backups")}}))
    state = folder / "stack"
    # Freqtrade configures no log file when it sees pytest's PYTEST_VERSION: run it as users do
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    process = subprocess.Popen(BOTWATCH + ["up", "--config", str(folder / "bots.json"), "--timings", "fast",
                                           "--state-dir", str(state)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env)
    try:
        stack = Stack(state, process)
        stack.ft, stack.exchange = ft, exchange
        wait_for(lambda: ft.api("ping") == {"status": "pong"}, timeout=90, what="Freqtrade's API")
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        pid = ft.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
        exchange.close()
        assert process.returncode == 0, output


def exporter_sample(stack, name, **labels):
    return sample(parse_metrics(http_get(stack.info["exporter"] + "/metrics").decode()), name, bot="ft-live", **labels)


def test_it_trades_and_botwatch_reports_freqtrades_own_figures(live):
    wait_for(lambda: live.ft.api("profit")["closed_trade_count"] >= 2, timeout=120, what="closed dry-run trades")

    def same_figures():
        profit, status = live.ft.api("profit"), live.ft.api("status")
        realized = exporter_sample(live, "tradingbot_realized_pnl")
        positions = {t["pair"]: t["amount"] for t in status}
        shown = {pair: exporter_sample(live, "tradingbot_position", symbol=pair) for pair in positions}
        return (realized == pytest.approx(profit["profit_closed_coin"], abs=1e-6)
                and all(shown[p] == pytest.approx(a, abs=1e-9) for p, a in positions.items()))

    wait_for(same_figures, timeout=30, interval=0.3, what="botwatch's P&L and positions = Freqtrade's")
    assert exporter_sample(live, "tradingbot_data_file_valid") == 1
    assert exporter_sample(live, "tradingbot_state", state="running") == 1
    assert time.time() - exporter_sample(live, "tradingbot_last_loop_timestamp_seconds") < 10
    assert exporter_sample(live, "tradingbot_info", kind="spot", runtime="process", preset="freqtrade",
                           exchange="binance", quote="USDT") == 1


def test_kill_9_is_restarted_and_trading_resumes(live):
    """The fast path: the remediator restarts it on the exporter's word (its pidfd), before two checks and a
    rule evaluation could; the death is in the ledger as the incident that acted."""
    old = live.ft.pid()
    trades = live.ft.api("profit")["trade_count"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (pid := live.ft.pid()) and pid != old and live.ft.api("ping"), timeout=90,
             what="Freqtrade restarted by the remediator")
    ledger = live.state / "remediator" / "ledger.sqlite3"
    with contextlib.closing(sqlite3.connect(ledger, timeout=10)) as db:
        notes = db.execute("SELECT note FROM deliveries WHERE bot = 'ft-live' AND status = 'death'").fetchall()
    assert notes and notes[-1][0] == "scheduled restart", notes
    wait_for(lambda: live.ft.api("profit")["trade_count"] > trades, timeout=150, what="trading resumed")


def test_a_frozen_freqtrade_is_stuck_and_restarted(live):
    frozen_until_replaced(live, live.ft.pid(), timeout=90)
    wait_for(lambda: live.ft.api("ping") == {"status": "pong"}, timeout=60, what="its API back")


def frozen_until_replaced(live, pid: int, timeout: float) -> None:
    """SIGSTOP the bot's process; TradingBotStuck must fire and botwatch replace it (SIGKILLed at the end if not)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: live.firing("TradingBotStuck", bot="ft-live"), timeout=60, what="TradingBotStuck")
        wait_for(lambda: (now := live.ft.pid()) and now != pid, timeout=timeout, what="the frozen bot replaced")
    finally:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def no_jobs(live) -> bool:
    """No job of the remediator's is queued or running."""
    jobs = parse_metrics(http_get(live.info["remediator"] + "/metrics").decode())
    return sample(jobs, "botwatch_jobs", state="queued") == 0 and sample(jobs, "botwatch_jobs", state="running") == 0


def settled(live) -> None:
    """Until the bot is well, no alert of it that a playbook acts on is pending or firing and no job is queued
    or running; then its restart count is reset (the tests before restarted it more often than max_attempts
    allows within healthy_reset_after). Alerts no playbook acts on are left out: the uptime budget's burn
    alert fires after the module's earlier kills (its 5m window, `for` 2m) and says nothing of now."""
    wait_for(lambda: live.ft.api("ping") == {"status": "pong"}
             and not live.query('ALERTS{bot="ft-live",playbook=~".+"}') and no_jobs(live),
             timeout=180, interval=1.0, what="ft-live well, no alert a playbook acts on, no job")
    token = (live.state / "secrets" / "webhook_token").read_text().strip()
    requests.post(live.info["remediator"] + "/reset/ft-live", headers={"Authorization": f"Bearer {token}"},
                  timeout=10).raise_for_status()


@pytest.mark.timeout(600)     # its start grace (verify_within) and two restarts of a real Freqtrade, by design
def test_killed_then_frozen_within_one_stuck_episode_is_restarted_once(live):
    """SIGKILL: TradingBotDown restarts it; the new Freqtrade freezes while it starts, so TradingBotStuck
    fires and stays firing: one episode. Its restart gives a bot botwatch just started verify_within, then
    finds it frozen and restarts it — once (before: the Stuck incident whose restart found the bot up, or
    was cancelled by Down's resolve, counted as acted on, every later delivery was "duplicate: already acted
    on", and the frozen Freqtrade stayed frozen)."""
    settled(live)
    restarts = remediator_restarts(live)       # the remediator's own count: Prometheus' may lag a scrape
    log = live.state / "remediator" / "memory" / "bot-operations.md"
    logged = len(log.read_text()) if log.exists() else 0
    old = live.ft.pid()
    os.kill(old, signal.SIGKILL)
    restarted = wait_for(lambda: (pid := live.ft.pid()) and pid != old and pid, timeout=90,
                         what="Freqtrade restarted after the kill")
    frozen_until_replaced(live, restarted, timeout=150)   # frozen while it starts: one Stuck episode
    wait_for(lambda: live.ft.api("ping") == {"status": "pong"}, timeout=90, what="its API back")
    wait_for(lambda: not live.firing("TradingBotStuck", bot="ft-live"), timeout=120, what="Stuck resolved")
    wait_for(lambda: remediator_restarts(live) >= restarts + 2, timeout=30,
             what="two restarts counted: the kill's and the freeze's")
    wait_for(lambda: no_jobs(live), timeout=60, interval=1.0, what="no job left")
    assert remediator_restarts(live) == restarts + 2, \
        "restarted once for the freeze; the operations log since the kill:\n" + log.read_text()[logged:]


OLD_REACTION = 10.0    # seconds botwatch took to start a Freqtrade stopped through its API, before #24


def botwatch_says(live, *words: str) -> str:
    token = live.state / "secrets" / "webhook_token"
    out = subprocess.run(BOTWATCH + [*words, "--remediator", live.info["remediator"], "--token-file", str(token)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def operator_stop_notices(live) -> list[str]:
    return [m["text"] for m in live.outbox() if "ft-live" in m.get("text", "") and "stopped by its operator" in m["text"]]


@pytest.mark.parametrize("endpoint,state", [("stop", "stopped"), ("stopentry", "paused")])
def test_stopped_or_paused_by_its_operator_is_left_so_told_once_and_handed_back_by_resume(live, endpoint, state):
    """Freqtrade's Telegram /stop and /stopentry (/pause) are its REST API's: the operator's decision. botwatch
    does not start it for three times its old reaction time, says so once, publishes
    tradingbot_paused{reason="operator_stop"} and keeps TradingBotStuck quiet (a stopped Freqtrade's loop goes
    stale); `botwatch resume` starts it through its API, with no restart."""
    settled(live)
    pid = live.ft.pid()
    restarts = remediator_restarts(live)       # the remediator's own count: Prometheus' may lag a scrape
    told = len(operator_stop_notices(live))
    live.ft.api(endpoint, method="post")
    try:
        assert live.ft.api("show_config")["state"] == state
        wait_for(lambda: exporter_sample(live, "tradingbot_paused", reason="operator_stop") == 1, timeout=30,
                 what="tradingbot_paused{reason=operator_stop} 1")
        until = time.monotonic() + 3 * OLD_REACTION
        while time.monotonic() < until:
            assert live.ft.api("show_config")["state"] == state, "botwatch started a bot its operator stopped"
            time.sleep(0.5)
        assert live.ft.pid() == pid
        assert remediator_restarts(live) == restarts
        assert not live.query('ALERTS{bot="ft-live",alertname=~"TradingBotStuck|TradingBotStaleData|TradingBotDown",'
                              'alertstate="firing"}')
        notices = wait_for(lambda: operator_stop_notices(live)[told:], timeout=30, what="the notice")
        assert len(notices) == 1 and "botwatch resume ft-live" in notices[0]
        assert "ft-live" in botwatch_says(live, "pauses")
    finally:                                    # whatever failed above, the next test gets a running bot
        said = botwatch_says(live, "resume", "ft-live")
    assert "resumed" in said
    wait_for(lambda: live.ft.api("show_config")["state"] == "running", timeout=30, what="started by resume")
    wait_for(lambda: exporter_sample(live, "tradingbot_paused", reason="operator_stop") == 0, timeout=30,
             what="tradingbot_paused back to 0")
    assert live.ft.pid() == pid
    assert len(operator_stop_notices(live)) == told + 1


def remediator_restarts(live) -> float:
    return sample(parse_metrics(http_get(live.info["remediator"] + "/metrics").decode()),
                  "botwatch_bot_restarts_total", bot="ft-live") or 0.0


def test_killed_while_running_comes_back_running_though_its_config_says_initial_state_stopped(live):
    """botwatch's restart brings a crashed Freqtrade up in its config's initial_state; it was running before
    the crash, by its operator's choice, so botwatch starts it: the state it last saw, never another."""
    settled(live)
    original = live.ft.config.read_text()
    config = json.loads(original)
    config["initial_state"] = "stopped"
    live.ft.config.write_text(json.dumps(config, indent=1))
    try:
        wait_for(lambda: live.ft.api("show_config")["state"] == "running", timeout=30, what="running")
        ledger = live.state / "remediator" / "ledger.sqlite3"

        def seen_running():
            with contextlib.closing(sqlite3.connect(ledger, timeout=10)) as db:
                row = db.execute("SELECT value FROM kv WHERE key = 'observed-state:ft-live'").fetchone()
            return row and json.loads(row[0])[0] == "running"
        wait_for(seen_running, timeout=30, what="the remediator's look at it, running")
        old = live.ft.pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (pid := live.ft.pid()) and pid != old and live.ft.api("ping"), timeout=90,
                 what="Freqtrade restarted")
        wait_for(lambda: live.ft.api("show_config")["state"] == "running", timeout=60,
                 what="started again: running, as before the crash")
        assert exporter_sample(live, "tradingbot_paused", reason="operator_stop") == 0
    finally:
        live.ft.config.write_text(original)


def closed_trades(live) -> dict[int, float]:
    return {t["trade_id"]: t["profit_abs"] for t in live.ft.api("trades?limit=500")["trades"]}


def test_a_damaged_database_is_restored_with_every_closed_trade(live):
    backed_up = subprocess.run(BOTWATCH + ["backup", "--config", live.info["config"], "ft-live"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60,
                               env={**os.environ, "BOTWATCH_DATA_DIR": str(live.ft.folder / "by-hand")})
    assert backed_up.returncode == 0 and "ft-live: success" in backed_up.stdout, backed_up.stdout + backed_up.stderr
    in_backup = set(closed_trades(live))
    wait_for(lambda: set(closed_trades(live)) - in_backup, timeout=150, what="a trade closed since the backup")
    mirror = live.state / "remediator" / "mirror" / "ft-live.jsonl"
    before = closed_trades(live)
    wait_for(lambda: {json.loads(line)["trade_id"] for line in mirror.read_text().splitlines()} >= set(before),
             timeout=30, what="the fill mirror holding every closed trade")
    open_before = {t["trade_id"] for t in live.ft.api("status")}
    with sqlite3.connect(live.ft.db) as db:              # every page in the main file, then one zeroed
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = live.ft.db.stat().st_size
    with open(live.ft.db, "r+b") as f:
        f.seek((size // 4096 // 2) * 4096)
        f.write(b"\0" * 4096)
    wait_for(lambda: exporter_sample(live, "tradingbot_data_file_valid") == 0, timeout=30, what="the damage seen")
    wait_for(lambda: exporter_sample(live, "tradingbot_data_file_valid") == 1, timeout=120, what="restored")
    assert list(live.ft.folder.glob("tradesv3.dryrun.sqlite.corrupt-*")), "the damaged database is kept"
    wait_for(lambda: live.ft.api("ping"), timeout=60, what="Freqtrade back")
    after = closed_trades(live)
    lost = {trade_id for trade_id in before if after.get(trade_id) != pytest.approx(before[trade_id], abs=1e-8)}
    assert not lost, f"closed trades lost or changed by the restore: {sorted(lost)}"
    still_there = set(after) | {t["trade_id"] for t in live.ft.api("status")}
    assert open_before <= still_there, f"open trades lost by the restore: {sorted(open_before - still_there)}"
    assert live.ft.api("profit")["closed_trade_count"] >= len(before)
    restore = live.state / "remediator" / "memory" / "bot-operations.md"
    wait_for(lambda: re.search(r"restore: success.*\n.*[1-9]\d* closed trades replayed from the mirror",
                               restore.read_text()), timeout=30, what="the restore's record: trades replayed")


def test_api_key_errors_restart_nothing_and_reach_telegram(live):
    pid = live.ft.pid()
    restarts = remediator_restarts(live)
    live.exchange.auth_error = True
    try:
        wait_for(lambda: exporter_sample(live, "tradingbot_api_errors_total", kind="auth") > 0, timeout=120,
                 what="Freqtrade logging the exchange's -2015")
        wait_for(lambda: any("TradingBotApiKeyErrors" in m.get("text", "") for m in live.outbox()), timeout=60,
                 what="Alertmanager's Telegram message")
    finally:
        live.exchange.auth_error = False
    assert live.ft.pid() == pid
    assert remediator_restarts(live) == restarts


def test_limit_orders_that_fill_after_a_delay_never_read_corrupt(tmp_path, freqtrade_python):
    """Freqtrade as users run it: limit orders (its default) priced on their own side of the book, so each
    entry and exit waits seconds for the walk to cross it. Polled every second as the exporter does, its
    database never reads invalid — not while a trade's entry is unfilled (amount 0), partly filled, or
    exiting — across several entries and exits."""
    from botwatch.core.checks import BotCheck
    from botwatch.core.config import config_from_mapping
    exchange = LocalExchange()
    ft = Freqtrade(tmp_path, exchange, price_side="same")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    process = subprocess.Popen(ft.argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check = BotCheck(config_from_mapping({"bots": [ft.bot()]}, base=tmp_path).bots[0])
    unfilled, closed, invalid = set(), 0, []

    def look() -> bool:
        nonlocal closed
        status = check.run()
        if status.datafile.present and not status.datafile.valid:
            invalid.append(status.datafile.first_problem)
        if ft.db.exists():
            with sqlite3.connect(f"file:{ft.db}?mode=ro", uri=True) as db:
                unfilled.update(row[0] for row in db.execute("SELECT id FROM trades WHERE is_open AND amount = 0"))
                closed = db.execute("SELECT COUNT(*) FROM trades WHERE NOT is_open").fetchone()[0]
        return bool(invalid) or (len(unfilled) >= 2 and closed >= 3)

    try:
        wait_for(look, timeout=400, interval=1.0, what="entries seen unfilled and three trades closed")
        assert not invalid, invalid
    finally:
        process.kill()
        process.wait(timeout=30)
        check.close()
        exchange.close()


def test_a_restore_that_puts_back_an_open_trade_and_its_open_order_leaves_freqtrade_able_to_manage_both(
        tmp_path, freqtrade_python):
    """Freqtrade with limit orders that wait for the price; the fill mirror syncs as the remediator's does.
    It is killed while a trade is open with an order still open; its database is restored from a backup
    taken before that trade, the mirror putting the trade and its orders back. A real Freqtrade started
    on the restored database manages both: its order fills or is replaced, and the trade exits normally
    (before: the rebuilt orders had ft_order_side '', price and amount NULL, and Freqtrade failed at every
    start with `TypeError … limit None` in _dry_is_price_crossed)."""
    from botwatch.core.config import config_from_mapping
    from botwatch.core.freqtrade_api import FreqtradeAPI
    from botwatch.remediator.restore.mirror import FillMirror
    from botwatch.remediator.restore.csvfile import RestoreReport
    from botwatch.remediator.restore.freqtrade import freqtrade_fill_in
    exchange = LocalExchange()
    ft = Freqtrade(tmp_path, exchange, price_side="same")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    bot = config_from_mapping({"bots": [ft.bot()]}, base=tmp_path).bots[0]
    mirror = FillMirror(bot, tmp_path / "mirror" / "ft-live.jsonl",
                        FreqtradeAPI(bot.api_url, bot.api_auth_file, timeout=5))
    backup = tmp_path / "backup.sqlite"
    process = subprocess.Popen(ft.argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ft.db.exists() and ft.api("ping"), timeout=90, what="Freqtrade up")
        with contextlib.closing(sqlite3.connect(ft.db)) as live, contextlib.closing(sqlite3.connect(backup)) as copy:
            live.backup(copy)                            # before any trade: every trade comes from the mirror

        def open_order():
            mirror.sync()
            return next((t for t in ft.api("status") if any(o.get("is_open") for o in t.get("orders") or [])), None)

        trade = wait_for(open_order, timeout=240, interval=0.5, what="an open trade with an open order")
        mirror.sync()
        process.kill()
        process.wait(timeout=30)
        restored = tmp_path / "restored.sqlite"
        shutil.copy(backup, restored)
        report = RestoreReport("ft-live")
        freqtrade_fill_in(mirror.path)(restored, report, None)
        assert "open trades put back" in report.detail and "not put back" not in report.detail, report.detail
        for suffix in ("-wal", "-shm"):
            Path(f"{ft.db}{suffix}").unlink(missing_ok=True)
        os.replace(restored, ft.db)
        with contextlib.closing(sqlite3.connect(ft.db)) as db:
            orders = db.execute("SELECT ft_order_side, side, ft_price, price, amount FROM orders WHERE ft_trade_id = ?",
                                (trade["trade_id"],)).fetchall()
        assert orders and all(o[0] in ("buy", "sell") and o[1] and o[2] > 0 and o[3] and o[4] for o in orders), orders
        ft.log.write_text("")
        process = subprocess.Popen(ft.argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for(lambda: ft.api("ping"), timeout=90, what="Freqtrade up on the restored database")

        def exited():
            assert "TypeError" not in ft.log.read_text(), ft.log.read_text()[-3000:]
            assert process.poll() is None, "Freqtrade exited on the restored database"
            found = ft.api(f"trade/{trade['trade_id']}")
            return not found["is_open"] and found["close_rate"]

        wait_for(exited, timeout=300, interval=1.0, what=f"trade {trade['trade_id']} exited normally")
    finally:
        process.kill()
        process.wait(timeout=30)
        exchange.close()
