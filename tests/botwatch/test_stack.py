"""`botwatch up` as a person runs it: the demo fleet comes up, stack.json tells where, SIGTERM stops all."""

import json
import signal
import subprocess

import pytest

from tests.conftest import BOTWATCH, ROOT, http_get, parse_metrics, sample, wait_for


@pytest.mark.slow
def test_up_starts_the_demo_fleet_and_stops_everything(tmp_path):
    state = tmp_path / "stack"
    process = subprocess.Popen(BOTWATCH + ["up", "--timings", "fast", "--state-dir", str(state)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stack = wait_for(lambda: json.loads((state / "stack.json").read_text()), timeout=60, what="stack.json")
        assert set(stack["bots"]) == {"doge-long", "doge-short", "btc-optimized", "hummingbot-mm"}
        metrics = wait_for(lambda: parse_metrics(http_get(stack["exporter"] + "/metrics").decode()),
                           what="exporter")
        for name, bot in stack["bots"].items():
            assert json.loads(http_get(bot["health"]))["name"] == name
            assert sample(metrics, "tradingbot_up", bot=name) == 1
        pids = [int(open(bot["pidfile"]).read()) for bot in stack["bots"].values()]
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    for pid in pids:   # gone, or a zombie left to an init that does not reap: not running either way
        assert not running(pid), f"bot pid {pid} still running after botwatch up stopped"


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")
