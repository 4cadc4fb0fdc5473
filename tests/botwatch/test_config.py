import json
import subprocess

import pytest

from botwatch.core.config import ConfigError, config_from_mapping, load_config, parse_text
from tests.conftest import BOTWATCH, ROOT

BRIEF = {"bots": [
    {"name": "doge-long", "type": "spot", "check_interval": 300, "process_name": "doge_long_bot",
     "data_file": "data/doge_trades.csv", "health_endpoint": "http://localhost:8080/health"},
    {"name": "btc-optimized", "type": "futures", "check_interval": 60, "process_name": "btc_v1_bot",
     "data_file": "data/btc_trades.csv"},
]}


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(raw)
    return caught.value.problems


def bot(**fields) -> dict:
    return {"name": "ok", "type": "spot", "data_file": "a.csv", "pidfile": "ok.pid", **fields}


def test_the_briefs_example_loads_unchanged_with_paths_resolved_against_its_folder(tmp_path):
    path = tmp_path / "config" / "bots.json"
    path.parent.mkdir()
    path.write_text(json.dumps(BRIEF))
    config = load_config(path)
    assert [b.name for b in config.bots] == ["doge-long", "btc-optimized"]
    assert config.bots[0].data_file == tmp_path / "config" / "data" / "doge_trades.csv"
    assert config.bots[0].runtime == "process" and config.bots[1].check_interval == 60
    assert config.remediation.backoff == [300, 900, 1800]


def test_the_contract_example_yaml_loads(tmp_path):
    text = (ROOT / "config" / "bots.example.yaml").read_text()
    config = config_from_mapping(parse_text(text), base=tmp_path)
    assert config.remediation.verify_after == 30 and config.backup.s3.bucket == "my-bucket"
    assert config.bots[0].memory_limit_cap == 2 * 1024**3
    assert config.bots[0].data_format.header_names()["symbol"] == "pair"


@pytest.mark.parametrize("raw, path, words", [
    ({"bots": [bot(name="a"), bot(name="a")]}, "bots[1].name", "duplicate name 'a'"),
    ({"bots": [bot(bogus_key=1)]}, "bots[0].bogus_key", "unknown key"),
    ({"bogus": 1, "bots": [bot()]}, "bogus", "unknown key"),
    ({"bots": [bot(type="rocket")]}, "bots[0].type", "'spot', 'futures' or 'market-maker'"),
    ({"bots": [bot(check_interval=-5)]}, "bots[0].check_interval", "negative"),
    ({"bots": [bot(check_interval="soon")]}, "bots[0].check_interval", "not a duration"),
    ({"bots": [bot(name="x; rm -rf /")]}, "bots[0].name", "not a slug"),
    ({"bots": [bot(name="Doge_Long")]}, "bots[0].name", "not a slug"),
    ({"bots": [bot(health_endpoint="not a url")]}, "bots[0].health_endpoint", "not an http"),
    ({"bots": [bot(container="c")]}, "bots[0]", "more than one liveness source (pidfile, container)"),
    ({"bots": [{"name": "ok", "data_file": "a.csv"}]}, "bots[0]", "no liveness source"),
    ({"bots": [bot(data_file=None)]}, "bots[0].data_file", ""),
    ({"bots": [{k: v for k, v in bot().items() if k != "data_file"}]}, "bots[0].data_file", "required"),
    ({"bots": [bot(error_patterns={"auth": ["(unclosed"]})]}, "bots[0].error_patterns.auth[0]", "regular expression"),
    ({"bots": [bot(on_rate_limit=["kill", "{signal}", "{pid}"])]}, "bots[0].on_rate_limit", "{pid} is the only"),
    ({"bots": [bot(start_command=[])]}, "bots[0].start_command", "non-empty"),
    ({"bots": [bot(expected_trades_per_hour={"min": 10, "max": 5})]}, "bots[0].expected_trades_per_hour", "below min"),
    ({"bots": [bot(memory_limit_cap="lots")]}, "bots[0].memory_limit_cap", "size"),
    ({"bots": []}, "bots", "at least 1"),
    ({"bots": [bot()], "report": {"at": "25:00"}}, "report.at", "time of day"),
    ({"bots": [bot()], "report": {"timezone": "Mars/Olympus"}}, "report.timezone", "time zone"),
    ({"bots": [bot()], "telegram": {"chat_id": 1.5}}, "telegram.chat_id", "not a chat id"),
    ({"bots": [bot()], "remediation": {"backoff": ["5m", "later"]}}, "remediation.backoff[1]", "not a duration"),
])
def test_each_problem_is_named_by_its_path(raw, path, words):
    found = problems(raw)
    assert any(p.startswith(path) and words in p for p in found), found


def test_every_problem_is_listed_not_just_the_first():
    found = problems({"bots": [bot(type="rocket", check_interval=-1), bot(name="b", health_endpoint="ftp://x")]})
    assert len(found) == 3, found


def test_bot_name_shown_beside_the_path():
    assert problems({"bots": [bot(name="doge", type="rocket")]})[0].startswith("bots[0].type (doge):")


@pytest.mark.parametrize("text, words", [
    ("bots: [", "invalid YAML"),
    ('{"bots": [', "invalid JSON"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_unparsable_files(text, words):
    with pytest.raises(ConfigError) as caught:
        parse_text(text, "bots.yaml")
    assert words in str(caught.value)


def test_durations_and_units():
    config = config_from_mapping({"bots": [bot(check_interval="1m30s", stale_after="15m")],
                                  "remediation": {"verify_after": "500ms", "backoff": [60, "1h"]}})
    assert config.bots[0].check_interval == 90 and config.bots[0].stale_after == 900
    assert config.remediation.verify_after == 0.5 and config.remediation.backoff == [60, 3600]


def run_cli(*args, cwd=None):
    return subprocess.run(BOTWATCH + list(args), capture_output=True, text=True, cwd=cwd or ROOT, timeout=60)


def test_check_config_prints_a_line_per_bot_and_warns_of_missing_files(tmp_path):
    path = tmp_path / "bots.json"
    path.write_text(json.dumps(BRIEF))
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["doge-long", "btc-optimized"]
    assert "data_file (doge-long)" in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize("text", ["bots: [", '{"bots": [', "bots: [{name: a, bogus: 1}]", ""])
def test_check_config_exits_2_without_a_traceback(tmp_path, text):
    path = tmp_path / "bots.yaml"
    path.write_text(text)
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and str(path) in result.stderr


def test_check_config_of_a_missing_file(tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "file not found" in result.stderr


def test_wrong_types_are_said_in_a_users_words_never_pydantics():
    found = problems({"bots": [bot(data_file=[1, 2], check_interval=True, starting_balance="lots",
                                   expected_trades_per_hour=[1], type="fut")],
                      "telegram": {"chat_id": 3.5}, "remediation": {"dry_run": "maybe", "backoff": []},
                      "backup": "s3"})
    assert found == [
        "telegram.chat_id: 3.5 is not a chat id: use a number like 123456789, an @channel name, or a list",
        "backup: expected a mapping (key: value lines)",
        "remediation.dry_run: expected true or false",
        "remediation.backoff: must have at least 1 item(s)",
        "bots[0].type (ok): expected one of 'spot', 'futures' or 'market-maker'",
        "bots[0].check_interval (ok): a duration, not a boolean",
        "bots[0].data_file (ok): expected a file path (text)",
        "bots[0].starting_balance (ok): expected a number",
        "bots[0].expected_trades_per_hour (ok): expected a mapping (key: value lines)",
    ]


def test_a_path_is_made_of_the_documents_own_keys_and_indexes():
    # a union (chat_id) and a dict's keys (columns) put pydantic's own steps in `loc`; none reaches the path
    found = problems({"bots": [bot(data_format={"columns": {"when": "ts"}})], "telegram": {"chat_id": [None]}})
    assert found == ["telegram.chat_id: None is not a chat id: use a number like 123456789, an @channel name, "
                     "or a list",
                     "bots[0].data_format.columns.when (ok): expected one of 'timestamp', 'trade_id', 'symbol', "
                     "'side', 'price', 'qty' or 'fee'"]
    assert problems({}) == ["bots: required"]


def test_the_freqtrade_preset_fills_what_the_bot_leaves_out_and_explicit_keys_win():
    config = config_from_mapping({"bots": [
        {"name": "ft", "preset": "freqtrade", "container": "freqtrade", "data_file": "t.sqlite",
         "api_url": "http://127.0.0.1:8080"},
        {"name": "ft-own", "preset": "freqtrade", "container": "ft2", "data_file": "t.sqlite",
         "api_url": "http://127.0.0.1:8081", "health_endpoint": "http://127.0.0.1:8081/own", "stuck_after": "5m",
         "error_patterns": {"auth": ["my key died"]}}]})
    ft, own = config.bots
    assert ft.store == "freqtrade" and ft.health_endpoint == "http://127.0.0.1:8080/api/v1/ping"
    assert ft.stuck_after == 120 and any("AuthenticationError" in p for p in ft.error_patterns.auth)
    assert own.health_endpoint.endswith("/own") and own.stuck_after == 300
    assert own.error_patterns.auth == ["my key died"] and any("DDoSProtection" in p for p in own.error_patterns.rate_limit)


def test_api_keys_without_a_preset_are_a_mistake():
    assert problems({"bots": [bot(api_url="http://127.0.0.1:8080")]}) == [
        "bots[0] (ok): api_url and api_auth_file go with preset: freqtrade (the bot with a REST API)"]
    assert problems({"bots": [bot(preset="hummingbot", api_url="http://127.0.0.1:8080")]}) == [
        "bots[0] (ok): api_url and api_auth_file go with preset: freqtrade (the bot with a REST API)"]


def test_hummingbot_preset_fills_its_patterns_and_replay_names_a_ccxt_exchange():
    config = config_from_mapping({"bots": [bot(preset="hummingbot", error_patterns={"other": ["boom"]})]})
    hb = config.bots[0]
    assert hb.store == "hummingbot" and hb.stuck_after == 900
    assert any("HTTP status is 401" in p for p in hb.error_patterns.auth) and hb.error_patterns.other == ["boom"]
    replay = {"exchange": "binanse", "symbols": ["BTC/USDT"], "credentials_file": "k"}
    [problem] = problems({"bots": [bot(replay=replay)]})
    assert problem.startswith("bots[0].replay") and "'binanse' is not a ccxt exchange id" in problem
    [problem] = problems({"bots": [bot(replay={**replay, "exchange": "binance", "symbols": ["BTCUSDT"]})]})
    assert "not ccxt's unified BASE/QUOTE" in problem
    ok = config_from_mapping({"bots": [bot(replay={**replay, "exchange": "binance"})],
                              "exchanges": {"binance": {"on_rate_limit": ["scripts/slow-down.sh"]}}})
    assert ok.bots[0].exchange_name() == "binance" and [b.name for b in ok.bots_on("binance")] == ["ok"]


@pytest.mark.parametrize("window", [0, -5, "many", 10**9])
def test_a_dedup_window_out_of_range_names_its_path(window):
    found = problems({"bots": [bot(data_format={"dedup_window": window})]})
    assert any(p.startswith("bots[0].data_format.dedup_window") for p in found), found


def test_the_dedup_window_defaults_to_20000():
    config = config_from_mapping({"bots": [bot()]})
    assert config.bots[0].data_format.dedup_window == 20_000


def test_replay_on_a_freqtrade_bot_is_refused_with_the_reason():
    """It was accepted and silently ignored: Freqtrade's restore never asked the exchange."""
    replay = {"exchange": "binance", "symbols": ["BTC/USDT"], "credentials_file": "k"}
    [problem] = problems({"bots": [bot(preset="freqtrade", replay=replay)]})
    assert problem.startswith("bots[0] (ok): replay is not for preset: freqtrade") and "fill" in problem
    for fine in (bot(preset="hummingbot", replay=replay, log_file="hb.log"), bot(replay=replay)):
        assert config_from_mapping({"bots": [fine]}).bots[0].replay.exchange == "binance"


def test_telegram_commands_need_someone_allowed_and_the_bot_s_token():
    no_one = problems({"bots": [bot()], "telegram": {"bot_token_file": "t", "commands": {"enabled": True}}})
    assert len(no_one) == 1 and no_one[0].startswith("telegram.commands:") and "allow.users" in no_one[0]
    no_token = problems({"bots": [bot()], "telegram": {"commands": {"enabled": True, "allow": {"users": [42]}}}})
    assert len(no_token) == 1 and "bot_token_file" in no_token[0]
    assert problems({"bots": [bot()], "telegram": {"commands": {"enabled": True, "allow": {"chats": ["x"]}}}})
    ok = config_from_mapping({"bots": [bot()], "telegram": {"bot_token_file": "t",
                                                            "commands": {"enabled": True, "allow": {"chats": [-100]}}}})
    assert ok.telegram.commands.allow.chats == [-100] and ok.telegram.commands.poll_timeout == 25
