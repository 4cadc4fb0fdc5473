"""The exporter as a real process against real paperbots."""

import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import free_port, http_get, parse_metrics, require_tool, sample, wait_for, write_config


def scrape(url):
    return parse_metrics(http_get(url).decode())


@pytest.fixture
def slow_health():
    """A health endpoint that answers after 10 s: a stuck bot's web server."""
    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(10)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


@pytest.mark.slow
def test_exporter_against_running_paperbots(tmp_path, paperbots, exporter_process, slow_health):
    good = paperbots("good")
    victim = paperbots("victim")
    hung = paperbots("hung", hang_after=3)
    never = {"name": "never-started", "pidfile": str(tmp_path / "nope.pid"), "check_interval": 0.5,
             "health_endpoint": f"http://127.0.0.1:{free_port()}/health", "data_file": str(tmp_path / "nope.csv")}
    slow = {"name": "slow", "health_endpoint": slow_health, "health_timeout": 5, "check_interval": 0.5,
            "data_file": str(tmp_path / "slow.csv")}
    config = write_config(tmp_path / "bots.json",
                          [good.bot_config(expected_trades_per_hour={"min": 10, "max": 100000}, stale_after="1m"),
                           victim.bot_config(), hung.bot_config(), never, slow])
    url = exporter_process(config)

    # every configured bot is there from the first scrape
    first = scrape(url)
    for name in ("good", "victim", "hung", "never-started", "slow"):
        runtime = "none" if name == "slow" else "process"      # quote: USDT once it has traded, "" before
        assert 1 in [sample(first, "tradingbot_info", bot=name, kind="spot", runtime=runtime, preset="", exchange="",
                            quote=quote) for quote in ("", "USDT")], name
        assert sample(first, "tradingbot_up", bot=name) is not None, name
    assert sample(first, "tradingbot_up", bot="good") == 1
    assert sample(first, "tradingbot_up", bot="never-started") == 0
    assert sample(first, "tradingbot_data_file_problems", bot="never-started", check="missing") == 1
    assert sample(first, "tradingbot_expected_trades_per_hour", bot="good", bound="max") == 100000
    assert sample(first, "tradingbot_stale_after_seconds", bot="good") == 60

    # the exposition is clean by Prometheus' own linter
    promtool = require_tool("promtool")
    lint = subprocess.run([promtool, "check", "metrics"], input=http_get(url), capture_output=True)
    assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint.stderr

    # a health endpoint that hangs does not stall a scrape
    started = time.monotonic()
    scrape(url)
    assert time.monotonic() - started < 2.5

    # trades, P&L and equity follow the file
    wait_for(lambda: sample(scrape(url), "tradingbot_trades_total", bot="good") >= 5, what="good trading")
    s = scrape(url)
    assert sample(s, "tradingbot_data_file_valid", bot="good") == 1
    assert sample(s, "tradingbot_last_trade_timestamp_seconds", bot="good") > time.time() - 60
    assert sample(s, "tradingbot_equity", bot="good") == pytest.approx(
        1000 + sample(s, "tradingbot_realized_pnl", bot="good") + sample(s, "tradingbot_unrealized_pnl", bot="good"))
    assert sample(s, "tradingbot_position", bot="good", symbol="ETH/USDT") is not None

    # kill one: down at the next collection; the others are untouched
    victim.kill()
    wait_for(lambda: sample(scrape(url), "tradingbot_up", bot="victim") == 0, timeout=5, what="victim down")
    s = scrape(url)
    assert sample(s, "tradingbot_process_up", bot="victim") == 0
    assert sample(s, "tradingbot_health_up", bot="victim") == 0
    assert sample(s, "tradingbot_down_checks", bot="victim") >= 1
    assert sample(s, "tradingbot_up", bot="good") == 1

    # a hung bot is up but its trade count stands still
    trades = sample(s, "tradingbot_trades_total", bot="hung")
    assert trades == 3 and sample(s, "tradingbot_up", bot="hung") == 1
    time.sleep(1.5)
    s = scrape(url)
    assert sample(s, "tradingbot_trades_total", bot="hung") == 3 and sample(s, "tradingbot_up", bot="hung") == 1

    # a corrupt row makes the file invalid and it stays so while the bot appends good rows
    with open(good.csv, "a") as f:
        f.write("2026-01-01T00:00:00Z,zz,ETH/USDT,sideways,abc,-1,0\n")
    wait_for(lambda: sample(scrape(url), "tradingbot_data_file_valid", bot="good") == 0, timeout=5, what="invalid")
    time.sleep(1)
    s = scrape(url)
    assert sample(s, "tradingbot_data_file_valid", bot="good") == 0
    assert sample(s, "tradingbot_data_file_problems", bot="good", check="bad_side") == 1
    assert sample(s, "tradingbot_data_file_valid", bot="hung") == 1


@pytest.mark.slow
def test_api_errors_counted_from_the_bots_log(tmp_path, paperbots, exporter_process):
    bot = paperbots("badkey", auth_errors_after=2)
    url = exporter_process(write_config(tmp_path / "bots.json", [bot.bot_config()]))
    wait_for(lambda: sample(scrape(url), "tradingbot_api_errors_total", bot="badkey", kind="auth") >= 2,
             what="auth errors counted")
    assert sample(scrape(url), "tradingbot_api_errors_total", bot="badkey", kind="rate_limit") == 0


@pytest.mark.slow
def test_landing_page_and_clean_stop_on_sigterm(tmp_path, paperbots):
    from tests.conftest import BOTWATCH, ROOT
    bot = paperbots("lander")
    config = write_config(tmp_path / "bots.json", [bot.bot_config()])
    port = free_port()
    process = subprocess.Popen(BOTWATCH + ["exporter", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                               cwd=ROOT, stderr=subprocess.PIPE)
    try:
        page = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/").decode(), what="landing page")
        assert "lander" in page and 'href="/metrics"' in page
    finally:
        process.send_signal(signal.SIGTERM)
        try:     # stderr read while it stops: a full pipe would block its last log lines, and the stop with them
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"the exporter did not stop within 30 s of SIGTERM; its log:\n{err.decode()[-3000:]}")
    assert process.returncode == 0 and b"Traceback" not in err


def test_a_bad_config_stops_the_exporter_with_exit_2(tmp_path):
    from tests.conftest import BOTWATCH, ROOT
    path = tmp_path / "bots.yaml"
    path.write_text("bots: [{name: x, bogus: 1}]")
    result = subprocess.run(BOTWATCH + ["exporter", "--config", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "bots[0].bogus" in result.stderr and "Traceback" not in result.stderr
