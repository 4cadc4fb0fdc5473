"""A mistake a user can make at start-up is one line on stderr and exit 2, never a traceback."""

import socket
import subprocess

import pytest

from tests.conftest import BOTWATCH

CONFIG = "bots: [{name: a, pidfile: a.pid, data_file: a.csv}]\n"


def run(args, tmp_path, env=None, timeout=60):
    return subprocess.run(BOTWATCH + args, cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                          env=env)


def one_line(result, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(word in lines[0] for word in words), result.stderr


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def config(tmp_path):
    (tmp_path / "bots.yaml").write_text(CONFIG)
    (tmp_path / "token").write_text("secret\n")
    return tmp_path


def test_exporter_on_a_port_in_use(config, busy_port):
    one_line(run(["exporter", "--config", "bots.yaml", "--listen", f"127.0.0.1:{busy_port}"], config),
             f"127.0.0.1:{busy_port}", "already in use")


def test_remediator_on_a_port_in_use(config, busy_port):
    env = {"BOTWATCH_DATA_DIR": str(config / "var"), "PATH": "/usr/bin:/bin"}
    one_line(run(["remediator", "--config", "bots.yaml", "--token-file", "token", "--listen",
                  f"127.0.0.1:{busy_port}"], config, env=env), "already in use")


def test_remediator_with_an_unreadable_token_file(config):
    one_line(run(["remediator", "--config", "bots.yaml", "--token-file", "no-such-token"], config),
             "--token-file no-such-token", "No such file")


def test_remediator_with_a_data_dir_it_cannot_write(config):
    (config / "occupied").write_text("a file, not a folder")
    env = {"BOTWATCH_DATA_DIR": str(config / "occupied" / "var"), "PATH": "/usr/bin:/bin"}
    one_line(run(["remediator", "--config", "bots.yaml", "--token-file", "token", "--listen", "127.0.0.1:0"],
                 config, env=env), "BOTWATCH_DATA_DIR", "not a writable folder")


def test_a_command_with_an_unreadable_config(tmp_path):
    result = run(["exporter", "--config", "missing.yaml"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == ["missing.yaml: 1 problem:", "  file not found"]


def test_up_with_a_bad_config_or_state_dir(config):
    (config / "bad.yaml").write_text("bots: [{name: Bad}]\n")
    result = run(["up", "--config", "bad.yaml", "--state-dir", "state"], config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bots[0].name (Bad)" in result.stderr
    (config / "occupied").write_text("")
    one_line(run(["up", "--state-dir", "occupied/state"], config), "--state-dir", "occupied/state")


def test_up_with_a_freqtrade_that_is_not_there(tmp_path):
    one_line(run(["up", "--state-dir", "state", "--with-freqtrade", str(tmp_path / "no-freqtrade")], tmp_path),
             "--with-freqtrade", "make freqtrade")


def test_check_config_says_which_alerts_the_briefs_own_config_leaves_off_and_the_key_for_each(tmp_path):
    """The product description's example bots get no expected_trades_per_hour, stale_after or log_file: three
    kinds of alert could never fire for them, and nothing said so."""
    import json
    config = tmp_path / "bots.json"
    config.write_text(json.dumps({"bots": [
        {"name": "doge-long", "type": "spot", "check_interval": 300, "process_name": "doge_long_bot",
         "data_file": "data/doge_trades.csv", "health_endpoint": "http://localhost:8080/health"},
        {"name": "btc-optimized", "type": "futures", "check_interval": 60, "process_name": "btc_v1_bot",
         "data_file": "data/btc_trades.csv", "stale_after": "10m"}]}))
    result = subprocess.run(BOTWATCH + ["check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2
    for bot, key, alert in [("doge-long", "expected_trades_per_hour", "TradingBotAbnormalTradeFrequency"),
                            ("doge-long", "stale_after", "TradingBotStaleData"),
                            ("doge-long", "log_file", "TradingBotApiKeyErrors"),
                            ("btc-optimized", "log_file", "TradingBotRateLimited")]:
        assert any(f".{key} ({bot}): not set, so" in line and alert in line and "can never fire" in line
                   for line in result.stderr.splitlines()), (bot, key, result.stderr)
    assert "stale_after (btc-optimized)" not in result.stderr


def test_pause_names_an_unknown_bot_a_bad_duration_and_an_unreachable_remediator_in_one_line(config):
    """`botwatch pause` checks names against --config before asking; the remediator answers the rest (400 →
    exit 2, its sentence); a remediator that can't be reached is exit 1, not a traceback."""
    import time

    from tests.conftest import free_port, http_get, wait_for
    one_line(run(["pause", "nope", "--reason", "x", "--config", "bots.yaml", "--token-file", "token"], config),
             "no bot 'nope'")
    port = free_port()
    (config / "bots.yaml").write_text(CONFIG + f"remediation: {{alertmanager_urls: ['http://127.0.0.1:{free_port()}']}}\n")
    server = subprocess.Popen(BOTWATCH + ["remediator", "--config", "bots.yaml", "--token-file", "token", "--listen",
                                          f"127.0.0.1:{port}"], cwd=config, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**__import__("os").environ, "BOTWATCH_DATA_DIR": str(config / "var")})
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/-/healthy"), timeout=30, what="the remediator")
        url = ["--remediator", f"http://127.0.0.1:{port}", "--token-file", "token"]
        one_line(run(["pause", "a", "--for", "2 hours", "--reason", "x", *url], config), "--for", "not a duration")
        one_line(run(["pause", "nope", "--reason", "x", *url], config), "no bot 'nope'")
        one_line(run(["resume", *url], config), "exactly one")
        paused = run(["pause", "a", "--for", "1h", "--reason", "strategy change", *url], config)
        assert paused.returncode == 0 and "paused by" in paused.stdout, paused.stderr
        listed = run(["pauses", *url], config)
        assert listed.returncode == 0 and "a\tpause: strategy change" in listed.stdout
        assert run(["resume", "a", *url], config).returncode == 0
        assert run(["pauses", *url], config).stdout == ""
    finally:
        server.terminate()
        server.wait(timeout=30)
    start = time.monotonic()
    gone = run(["pauses", "--remediator", f"http://127.0.0.1:{port}", "--token-file", "token"], config)
    assert gone.returncode == 1 and "can't be reached" in gone.stderr and time.monotonic() - start < 30


def test_agent_token_prints_a_token_once_keeps_its_hash_and_revokes_it(tmp_path):
    import os
    from botwatch.remediator import agent_tokens
    from botwatch.remediator.ledger import Ledger
    (tmp_path / "bots.yaml").write_text("bots:\n  - {name: far, host: vps-2, process_name: x, data_file: f.csv}\n")
    env = {**os.environ, "BOTWATCH_DATA_DIR": str(tmp_path / "var")}

    def run(*args):
        return subprocess.run(BOTWATCH + ["agent-token", *args, "--config", str(tmp_path / "bots.yaml")],
                              capture_output=True, text=True, env=env)
    issued = run("vps-2")
    token = issued.stdout.strip()
    assert issued.returncode == 0 and token.startswith("bwa_") and "shown once" in issued.stderr
    ledger = Ledger(tmp_path / "var" / "ledger.sqlite3")
    try:
        assert agent_tokens.host_of(ledger, token) == "vps-2" and token not in str(ledger.get(agent_tokens.TOKENS_KEY))
    finally:
        ledger.close()
    unknown = run("vps-9")
    assert unknown.returncode == 2 and "vps-9" in unknown.stderr and "vps-2" in unknown.stderr and not unknown.stdout
    assert run("vps-2", "--revoke").returncode == 0
    again = run("vps-2", "--revoke")
    assert again.returncode == 1 and "no token" in again.stderr
