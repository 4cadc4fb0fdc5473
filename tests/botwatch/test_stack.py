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


def state_of(pid: int) -> str | None:
    """The process' state letter in /proc (Z: a zombie nobody reaped), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_up_reaps_a_bot_it_started_when_the_bot_is_killed(tmp_path):
    """`botwatch up` starts the bots that are not running, as its children; killed, one stayed a zombie (the
    remediator then saw "pid … is a zombie" and its pidfile named a pid that still existed)."""
    import threading
    from types import SimpleNamespace

    from botwatch.up.stack import supervise
    bot = subprocess.Popen(["sleep", "600"])
    stack = SimpleNamespace(processes={"bot-x": bot}, state=tmp_path, revive=lambda *a: True)
    stop = {"asked": False}
    loop = threading.Thread(target=supervise, args=(stack, stop), daemon=True)
    loop.start()
    try:
        bot.kill()
        wait_for(lambda: state_of(bot.pid) is None, timeout=10, what="the killed bot reaped")
        assert "bot-x" not in stack.processes
    finally:
        stop["asked"] = True
        loop.join(timeout=5)
        if bot.poll() is None:
            bot.kill()
