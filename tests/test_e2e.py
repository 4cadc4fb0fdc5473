"""End to end, with the real Prometheus and Alertmanager at fast timings: `botwatch up` runs the whole loop.

A bot killed with SIGKILL is brought back by the alert → webhook → restart playbook; a corrupt trade file
is restored with no trade lost; a hung bot raises the abnormal-frequency alert; API-key errors restart
nothing and reach Telegram (the local outbox); every dashboard panel's query returns data.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from botwatch.up.stack import service_pid as find_service
from tests.conftest import BOTWATCH, ROOT, free_port, http_get, kill_pidfile, parse_metrics, sample, wait_for

pytestmark = pytest.mark.slow


def paperbot(name: str, folder: Path, **flags) -> dict:
    port = free_port()
    files = {key: str(folder / f"{name}.{ext}")
             for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
    argv = BOTWATCH + ["paperbot", "--name", name, "--trade-interval", "0.5", "--health-port", str(port),
                       "--data-file", files["data_file"], "--journal", files["journal"], "--pidfile", files["pidfile"],
                       "--log-file", files["log_file"]]
    for flag, value in flags.items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    return {"name": name, "type": "spot", "check_interval": 1, "health_endpoint": f"http://127.0.0.1:{port}/health",
            "starting_balance": 1000, "expected_trades_per_hour": {"min": 1800, "max": 30000}, "stale_after": "30s",
            "start_command": argv, **files}


class Stack:
    def __init__(self, state: Path, process: subprocess.Popen):
        self.state, self.process = state, process
        self.info = wait_for(lambda: json.loads((state / "stack.json").read_text()), timeout=120, what="stack.json")

    def query(self, expr: str) -> list:
        url = f"{self.info['prometheus']}/api/v1/query?query={urllib.parse.quote(expr)}"
        body = json.loads(http_get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def outbox(self) -> list[dict]:
        path = Path(self.info["telegram_outbox"])
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def firing(self, alertname: str, **labels) -> bool:
        matchers = ",".join([f'alertname="{alertname}"', 'alertstate="firing"']
                            + [f'{k}="{v}"' for k, v in labels.items()])
        return bool(self.query(f"ALERTS{{{matchers}}}"))


@contextlib.contextmanager
def running(tmp_path: Path, config: dict, *args: str, env: dict | None = None):
    """`botwatch up --timings fast [args]` on the config, until the block ends; then every bot is stopped."""
    (tmp_path / "bots.json").write_text(json.dumps(config, indent=2))
    state = tmp_path / "stack"
    process = subprocess.Popen(BOTWATCH + ["up", "--config", str(tmp_path / "bots.json"), "--timings", "fast",
                                           "--state-dir", str(state), *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        s = Stack(state, process)
        s.bots = {b["name"]: b for b in config["bots"]}
        yield s
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        for bot in config["bots"]:
            kill_pidfile(bot["pidfile"])
        assert process.returncode == 0, output


@pytest.fixture
def stack(tmp_path):
    bots = tmp_path / "bots"
    bots.mkdir()
    marker = tmp_path / "standby-key-used"
    config = {"bots": [
        paperbot("e2e-victim", bots, seed=1),
        paperbot("e2e-corrupt", bots, seed=2),
        paperbot("e2e-hung", bots, seed=3, hang_after=20),
        {**paperbot("e2e-badkey", bots, seed=4, auth_errors_after=6),
         "on_auth_error": ["sh", "-c", f"echo switched > {marker}"]},
    ]}
    with running(tmp_path, config) as s:
        s.marker = marker
        yield s


def journal_ids(bot: dict) -> list[str]:
    return [json.loads(line)["trade_id"] for line in Path(bot["journal"]).read_text().splitlines() if line.strip()]


def csv_ids(bot: dict) -> list[str]:
    return [line.split(",")[1] for line in Path(bot["data_file"]).read_text().splitlines()[1:]]


def test_the_whole_loop(stack, capsys):
    s = stack
    wait_for(lambda: s.value('sum(tradingbot_up{bot=~"e2e-.*"})') == 4, timeout=60, what="four bots up in Prometheus")
    wait_for(lambda: s.value('botwatch_last_backup_timestamp_seconds{bot="e2e-corrupt"}'), timeout=60,
             what="the remediator's start-up backup")

    # 1. kill -9 → TradingBotDown → webhook → restart → up
    victim = s.bots["e2e-victim"]
    old = int(Path(victim["pidfile"]).read_text())
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: s.value('tradingbot_up{bot="e2e-victim"}') == 0, timeout=30, what="Prometheus sees it down")
    wait_for(lambda: s.value('tradingbot_up{bot="e2e-victim"}') == 1 and int(Path(victim["pidfile"]).read_text()) != old,
             timeout=90, what="the victim restarted and up again")
    recovered = time.monotonic() - killed
    wait_for(lambda: s.value('botwatch_bot_restarts_total{bot="e2e-victim"}') == 1, timeout=10,
             what="one restart counted (the next scrape of the remediator)")

    # 2. corruption → TradingBotDataCorrupted → restore → valid, with no trade lost
    corrupt = s.bots["e2e-corrupt"]
    path = Path(corrupt["data_file"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 32] = b"\x00" * 32
    with open(path, "r+b") as f:
        f.write(bytes(data[:middle + 32]))
    wait_for(lambda: s.value('tradingbot_data_file_valid{bot="e2e-corrupt"}') == 0, timeout=30, what="corruption seen")
    wait_for(lambda: s.value('tradingbot_data_file_valid{bot="e2e-corrupt"}') == 1, timeout=120, what="file restored")
    assert list(path.parent.glob("e2e-corrupt.csv.corrupt-*")), "the corrupt copy is kept"

    # 3. API-key errors: no restart, on_auth_error run, Telegram told
    wait_for(lambda: s.marker.exists(), timeout=120, what="on_auth_error run by the remediator")
    assert s.value('botwatch_bot_restarts_total{bot="e2e-badkey"}') == 0
    wait_for(lambda: any("API-key" in m.get("text", "") and "e2e-badkey" in m.get("text", "") for m in s.outbox()),
             timeout=60, what="the remediator's Telegram notice")
    wait_for(lambda: any("TradingBotApiKeyErrors" in m.get("text", "") for m in s.outbox()), timeout=60,
             what="Alertmanager's Telegram message")

    # 4. a hung bot (alive, not trading) → the abnormal-frequency alert
    wait_for(lambda: s.firing("TradingBotAbnormalTradeFrequency", bot="e2e-hung", direction="low"), timeout=150,
             what="TradingBotAbnormalTradeFrequency for the hung bot")
    assert s.value('tradingbot_up{bot="e2e-hung"}') == 1

    # 5. every dashboard panel's PromQL returns data from this Prometheus (the agents' panels: with many hosts,
    # tests/test_fleet_netns.py; the exchange clock's: no demo bot names an exchange, tests/exporter/test_exchange_clock.py)
    empty = []
    for dashboard in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(dashboard.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace('bot=~"$bot"', 'bot=~"e2e-.*"').replace('bot="$bot"', 'bot="e2e-victim"')
                expr = expr.replace('host=~"$host"', 'host=~".*"')
                if "agent" not in expr and "exchange_clock" not in expr and not s.query(expr):
                    empty.append(f"{dashboard.name} / {panel['title']}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # the restored file holds exactly the journal's trades once the bot is stopped
    kill_pidfile(corrupt["pidfile"])
    assert csv_ids(corrupt) == journal_ids(corrupt)
    with capsys.disabled():
        print(f"\ne2e: killed bot back up {recovered:.1f}s after SIGKILL "
              f"(check 1s, scrape/eval 1s, restart verify 2s); corrupt file restored with "
              f"{len(journal_ids(corrupt))} trades, none lost")


def test_bots_sharing_an_exchange_are_slowed_down_together(tmp_path):
    """Three bots on one exchange log a few 429s each, none enough for its own TradingBotRateLimited: the sum
    fires ExchangeRateLimited once, and each bot's on_rate_limit and the exchange's command run once."""
    bots = tmp_path / "bots"
    bots.mkdir()
    ran = tmp_path / "ran.txt"
    config = {"bots": [{**paperbot(name, bots, seed=i), "exchange": exchange, "expected_trades_per_hour": None,
                        "on_rate_limit": ["sh", "-c", f"echo {name} >> {ran}"]}
                       for i, (name, exchange) in enumerate((("rl-a", "binance"), ("rl-b", "binance"),
                                                             ("rl-c", "binance"), ("rl-k", "kraken")))],
              "exchanges": {"binance": {"on_rate_limit": ["sh", "-c", f"echo binance >> {ran}"]}}}
    with running(tmp_path, config) as s:
        wait_for(lambda: s.value('sum(tradingbot_up{bot=~"rl-.*"})') == 4, timeout=60, what="four bots up")
        for name in ("rl-a", "rl-b", "rl-c", "rl-k"):      # 4 each: under a bot's own threshold (more than 5)
            with open(s.bots[name]["log_file"], "a") as log:
                log.write("".join(f"2026-11-26 03:00:0{i},000 WARNING binance answered HTTP 429 Too Many Requests\n"
                                  for i in range(4)))
        wait_for(lambda: s.firing("ExchangeRateLimited", exchange="binance"), timeout=60,
                 what="ExchangeRateLimited for binance")
        wait_for(lambda: ran.exists() and len(ran.read_text().split()) == 4, timeout=60,
                 what="three bots' on_rate_limit and the exchange's command")
        time.sleep(8)           # Alertmanager's later sends of the same incident must add nothing
        assert sorted(ran.read_text().split()) == ["binance", "rl-a", "rl-b", "rl-c"]
        assert not s.firing("ExchangeRateLimited", exchange="kraken")
        assert not s.query('ALERTS{alertname="TradingBotRateLimited"}'), "no bot passed its own threshold"


def service_pid(state: Path, name: str) -> int:
    pid = find_service(state / "stack.json", name)
    assert pid, f"no process for {name}"
    return pid


def test_a_crashed_service_is_started_again_and_the_loop_still_heals(tmp_path):
    """The stack supervises its services as systemd or docker would: the remediator and the exporter,
    killed with SIGKILL, come back on their own, and a bot killed afterwards is still restarted."""
    bots = tmp_path / "bots"
    bots.mkdir()
    victim = paperbot("e2e-phoenix", bots, seed=6)
    with running(tmp_path, {"bots": [victim]}) as s:
        wait_for(lambda: s.value('tradingbot_up{bot="e2e-phoenix"}') == 1, timeout=60, what="the bot seen up")
        for service, ready in (("remediator", "/-/healthy"), ("exporter", "/metrics")):
            old = service_pid(s.state, service)
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: service_pid(s.state, service) != old and http_get(s.info[service] + ready),
                     timeout=60, what=f"the {service} back")
        pid = int(Path(victim["pidfile"]).read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: int(Path(victim["pidfile"]).read_text()) != pid and s.value(
            'tradingbot_up{bot="e2e-phoenix"}') == 1, timeout=90, what="the bot restarted after the crashes")


def test_a_paused_bot_killed_is_left_down_a_replayed_alert_is_held_and_it_is_restarted_once_when_the_pause_ends(
        tmp_path):
    """`botwatch pause --for 40s` is a silence in Alertmanager and tradingbot_paused 1; a kill -9 then is not
    restarted, and a webhook replayed by hand meanwhile is held. When the pause runs out the bot goes the
    normal way (its alert, then one restart) — exactly once."""
    from tests.remediator.conftest import alert, payload
    bots = tmp_path / "bots"
    bots.mkdir()
    config = {"bots": [paperbot("e2e-paused", bots, seed=5)]}
    with running(tmp_path, config) as s:
        bot = s.bots["e2e-paused"]
        token = s.state / "secrets" / "webhook_token"
        wait_for(lambda: s.value('tradingbot_up{bot="e2e-paused"}') == 1, timeout=60, what="the bot up")
        said = subprocess.run(BOTWATCH + ["pause", "e2e-paused", "--for", "40s", "--reason", "e2e pause",
                                          "--remediator", s.info["remediator"], "--token-file", str(token)],
                              capture_output=True, text=True, timeout=60)
        assert said.returncode == 0, said.stderr
        [silence] = [x for x in json.loads(http_get(s.info["alertmanager"] + "/api/v2/silences"))
                     if x["status"]["state"] == "active" and x["createdBy"] == "botwatch"]
        assert {"name": "bot", "value": "e2e-paused", "isRegex": False, "isEqual": True} in silence["matchers"]
        wait_for(lambda: s.value('tradingbot_paused{bot="e2e-paused",reason="pause"}') == 1, timeout=30,
                 what="tradingbot_paused 1 in Prometheus")
        old = int(Path(bot["pidfile"]).read_text())
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: s.value('tradingbot_up{bot="e2e-paused"}') == 0, timeout=30, what="seen down")

        def remediator_metric(name: str, **labels) -> float:
            return sample(parse_metrics(http_get(s.info["remediator"] + "/metrics").decode()), name, **labels) or 0.0

        def remediations(outcome: str) -> float:
            return remediator_metric("botwatch_remediations_total", bot="e2e-paused", playbook="restart",
                                     outcome=outcome)
        # the fast path told the death at once: held. Then a replayed alert is taken (a hold is no look at the
        # bot, so the next copy acts) and held too — counted from the first, whenever each one lands
        wait_for(lambda: remediations("held") >= 1, timeout=30, what="the death held")
        held = remediations("held")
        secret = token.read_text().strip()
        request = urllib.request.Request(s.info["remediator"] + "/alerts", method="POST",
                                         data=payload(alert("e2e-paused")).encode(),
                                         headers={"Authorization": f"Bearer {secret}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200 and json.loads(answer.read())["scheduled"] == 1
        wait_for(lambda: remediations("held") == held + 1, timeout=30, what="the replayed alert held")
        assert int(Path(bot["pidfile"]).read_text()) == old and not s.firing("TradingBotDown", bot="e2e-paused")
        wait_for(lambda: s.value('tradingbot_up{bot="e2e-paused"}') == 1, timeout=120, what="restarted after the pause")
        wait_for(lambda: remediator_metric("botwatch_jobs", state="queued") == 0
                 and remediator_metric("botwatch_jobs", state="running") == 0
                 and not s.firing("TradingBotDown", bot="e2e-paused"), timeout=60, what="the incident over")
        assert remediator_metric("botwatch_bot_restarts_total", bot="e2e-paused") == 1
        assert remediations("success") == 1
