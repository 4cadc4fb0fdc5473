"""`botwatch up`: the local stack on loopback — the demo paperbots and the exporter — until Ctrl-C.

It writes `STATE/stack.json` (CONTRACT.md) so that tests and people find every part. Bots are started
in their own sessions so that they outlive a restart of any monitor; on stop, every process the stack
started, and every bot named by a pidfile in the state dir, is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from botwatch.config import load_config

log = logging.getLogger("botwatch.up")

# name, strategy, seed: the brief's four demo bots
DEMO_BOTS = [
    ("doge-long", "long", 11, "spot"),
    ("doge-short", "short", 12, "spot"),
    ("btc-optimized", "long", 13, "futures"),
    ("hummingbot-mm", "mm", 14, "market-maker"),
]
TIMINGS = {
    # check_interval (s), trade_interval (s), stale_after
    "fast": {"check_interval": 1, "trade_interval": 1.0, "stale_after": "30s"},
    "default": {"check_interval": 15, "trade_interval": 5.0, "stale_after": "5m"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def botwatch_argv() -> list[str]:
    return [sys.executable, "-m", "botwatch"]


def demo_config(state: Path, timings: str) -> tuple[Path, dict]:
    """Write the demo fleet's config; return its path and each bot's files and health URL."""
    t = TIMINGS[timings]
    bots_dir = state / "bots"
    bots_dir.mkdir(parents=True, exist_ok=True)
    entries, bots = [], {}
    for name, strategy, seed, kind in DEMO_BOTS:
        port = free_port()
        files = {key: str(bots_dir / f"{name}.{ext}")
                 for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
        argv = botwatch_argv() + [
            "paperbot", "--name", name, "--strategy", strategy, "--seed", str(seed),
            "--trade-interval", str(t["trade_interval"]), "--health-port", str(port),
            "--data-file", files["data_file"], "--journal", files["journal"],
            "--pidfile", files["pidfile"], "--log-file", files["log_file"]]
        per_hour = 3600 / t["trade_interval"]
        entries.append({
            "name": name, "type": kind, "check_interval": t["check_interval"], "pidfile": files["pidfile"],
            "health_endpoint": f"http://127.0.0.1:{port}/health", "data_file": files["data_file"],
            "journal": files["journal"], "log_file": files["log_file"], "starting_balance": 1000,
            "expected_trades_per_hour": {"min": round(per_hour / 4), "max": round(per_hour * 4)},
            "stale_after": t["stale_after"], "start_command": argv,
        })
        bots[name] = {"health": f"http://127.0.0.1:{port}/health", "pidfile": files["pidfile"],
                      "data_file": files["data_file"], "journal": files["journal"], "log_file": files["log_file"]}
    path = state / "bots.yaml"
    path.write_text("# written by `botwatch up`: the demo fleet\n" + yaml.safe_dump({"bots": entries}, sort_keys=False))
    return path, bots


@dataclass
class Stack:
    state: Path
    config_path: Path
    timings: str = "default"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def spawn(self, name: str, argv: list[str], detach: bool = False) -> subprocess.Popen:
        logs = self.state / "logs"
        logs.mkdir(exist_ok=True)
        out = open(logs / f"{name}.log", "ab")
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=detach, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        out.close()
        self.processes[name] = process
        return process

    def start_bots(self, config) -> None:
        for bot in config.bots:
            if bot.start_command and not _pid_alive(bot.pidfile):
                self.spawn(f"bot-{bot.name}", bot.start_command, detach=True)

    def start_exporter(self) -> None:
        port = free_port()
        self.spawn("exporter", botwatch_argv() + ["exporter", "--config", str(self.config_path),
                                                  "--listen", f"127.0.0.1:{port}"])
        self.urls["exporter"] = f"http://127.0.0.1:{port}"
        _wait_http(f"{self.urls['exporter']}/metrics", "exporter", self.processes["exporter"])

    def write_state(self, bots: dict) -> Path:
        path = self.state / "stack.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.urls, "bots": bots}, indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def stop(self, config) -> None:
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                process.terminate()
        for bot in config.bots:                      # bots restarted by others are ours too
            pid = _pid_alive(bot.pidfile)
            if pid:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        for bot in config.bots:
            pid = _pid_alive(bot.pidfile)
            if pid:
                os.kill(pid, signal.SIGKILL)


def _pid_alive(pidfile: Path | None) -> int | None:
    try:
        pid = int(Path(pidfile).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (TypeError, ValueError, OSError):
        return None


def _wait_http(url: str, what: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}; see its log in the state dir")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:g}s")


def up(config_file: str | None, timings: str, state_dir: str) -> int:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    if config_file:
        config_path = Path(config_file).resolve()
        config = load_config(config_path)
        bots = {b.name: {"health": b.health_endpoint, "pidfile": str(b.pidfile or ""), "data_file": str(b.data_file),
                         "journal": str(b.journal or "")} for b in config.bots}
    else:
        config_path, bots = demo_config(state, timings)
        config = load_config(config_path)
    stack = Stack(state, config_path, timings)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        stack.start_bots(config)
        stack.start_exporter()
        path = stack.write_state(bots)
        print(f"botwatch is up ({len(config.bots)} bots, {timings} timings); state in {state}")
        for name, url in stack.urls.items():
            print(f"  {name:<13} {url}")
        print(f"  stack.json    {path}\nCtrl-C stops everything.", flush=True)
        while not stopping.wait(1.0):
            for name, process in stack.processes.items():
                if not name.startswith("bot-") and process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping", file=sys.stderr)
                    stopping.set()
        return 0
    except RuntimeError as err:
        print(f"botwatch up: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop(config)
        print("botwatch stopped", flush=True)
