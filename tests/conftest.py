"""Fixtures that start real things: paperbot processes, the exporter, Prometheus' tools."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOTWATCH = [sys.executable, "-m", "botwatch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as err:  # not up yet
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Paperbot:
    name: str
    dir: Path
    port: int
    process: subprocess.Popen
    argv: list[str]

    @property
    def csv(self) -> Path:
        return self.dir / f"{self.name}.csv"

    @property
    def journal(self) -> Path:
        return self.dir / f"{self.name}.jsonl"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def health(self) -> dict:
        return json.loads(http_get(self.health_url))

    def bot_config(self, **extra) -> dict:
        entry = {"name": self.name, "type": "spot", "check_interval": 0.5, "pidfile": str(self.pidfile),
                 "health_endpoint": self.health_url, "data_file": str(self.csv), "journal": str(self.journal),
                 "log_file": str(self.log), "starting_balance": 1000, "start_command": self.argv}
        entry.update(extra)
        return entry

    def kill(self, sig=signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=10)


@pytest.fixture
def paperbots(tmp_path):
    """start(name, **flags) runs a real paperbot process; all are stopped at the end of the test."""
    started: list[Paperbot] = []

    def start(name: str, seed: int = 7, trade_interval: float = 0.1, wait: bool = True, **flags) -> Paperbot:
        port = free_port()
        folder = tmp_path / "bots"
        argv = BOTWATCH + ["paperbot", "--name", name, "--data-file", str(folder / f"{name}.csv"),
                           "--journal", str(folder / f"{name}.jsonl"), "--health-port", str(port),
                           "--pidfile", str(folder / f"{name}.pid"), "--log-file", str(folder / f"{name}.log"),
                           "--seed", str(seed), "--trade-interval", str(trade_interval)]
        for flag, value in flags.items():
            argv += [f"--{flag.replace('_', '-')}", str(value)]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bot = Paperbot(name, folder, port, process, argv)
        started.append(bot)
        if wait:
            wait_for(lambda: bot.health(), what=f"paperbot {name} /health")
        return bot

    yield start
    for bot in started:
        if bot.process.poll() is None:
            bot.process.terminate()
            try:
                bot.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                bot.process.kill()


def write_config(path: Path, bots: list[dict], **sections) -> Path:
    path.write_text(json.dumps({"bots": bots, **sections}, indent=2))
    return path


@pytest.fixture
def exporter_process(tmp_path):
    """start(config_path) runs `botwatch exporter` on a free port; returns its /metrics URL."""
    processes = []

    def start(config: Path) -> str:
        port = free_port()
        process = subprocess.Popen(BOTWATCH + ["exporter", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "wb"))
        processes.append(process)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: http_get(url), what="exporter /metrics")
        return url

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: `make test` installs it (Debian's prometheus packages)")
    return path
