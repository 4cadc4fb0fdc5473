"""Fixtures that start real things: paperbot processes, the exporter, Prometheus' tools."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.telegram_standin import TelegramStandIn

# Fuzzing profiles: `make test` runs a short, derandomized one (the same examples every run, so a CI
# failure reproduces); `make fuzz` a long, random one (BOTWATCH_FUZZ=long), keeping what it finds in
# .hypothesis/ to replay. A failure found is then kept as an explicit @example / regular test.
_FUZZ_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                          HealthCheck.data_too_large])
settings.register_profile("short", max_examples=40, derandomize=True, database=None, **_FUZZ_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 4000)), **_FUZZ_COMMON)
settings.load_profile(os.environ.get("BOTWATCH_FUZZ", "short"))
_SESSION_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """`make fuzz` ends with one JSON line: how many properties ran, with how many examples each, and how
    many failed (each failure's minimal example is in the report above and in .hypothesis/)."""
    if os.environ.get("BOTWATCH_FUZZ") != "long":
        return
    stats = terminalreporter.stats
    failed = [report.nodeid for key in ("failed", "error") for report in stats.get(key, [])]
    passed = len(stats.get("passed", []))
    terminalreporter.write_line(json.dumps({
        "fuzz": "long", "properties": passed + len(failed), "examples_per_property": settings().max_examples,
        "passed": passed, "failed": failed, "seconds": round(time.monotonic() - _SESSION_STARTED, 1)}))


# The longest files first (seconds in `make test`, 2026-12-02): `--dist loadfile` hands files to the workers
# in collection order, and one that starts last sets the run's end. Every other file keeps its order.
LONGEST_FIRST = ("tests/test_freqtrade.py", "tests/test_e2e_ha.py", "tests/test_chaos.py",     # 426, 239, 234
                 "tests/test_fleet_netns.py", "tests/test_e2e.py", "tests/remediator/test_docker.py")  # 192, 134, 121


def pytest_collection_modifyitems(config, items):
    rank = {path: place for place, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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

    def start(config: Path, *args: str) -> str:
        port = free_port()
        process = subprocess.Popen(BOTWATCH + ["exporter", "--config", str(config), "--listen", f"127.0.0.1:{port}",
                                               "--state-dir", str(tmp_path / "exporter-state"), *args],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "ab"))
        processes.append(process)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: http_get(url), what="exporter /metrics")
        return url

    start.processes = processes
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
    """A sample's value by its labels; a bot's series carry `host` ("local" unless the test names it)."""
    found = samples.get((name, frozenset(labels.items())))
    if found is None and "host" not in labels:
        found = samples.get((name, frozenset({**labels, "host": "local"}.items())))
    return found


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: `make test` installs it (Debian's prometheus packages)")
    return path


@pytest.fixture
def telegram():
    stand_in = TelegramStandIn()
    yield stand_in
    stand_in.close()


class Daemons:
    """Prometheus-family servers a test starts on 127.0.0.1: each in its own folder, stopped at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.processes: list[subprocess.Popen] = []

    def start(self, tool: str, config_name: str, config_text: str, args) -> str:
        binary = require_tool(tool)
        folder = self.root / f"{tool}{len(self.processes)}"
        folder.mkdir()
        (folder / config_name).write_text(config_text)
        port = free_port()
        argv = [binary, f"--config.file={folder / config_name}", f"--web.listen-address=127.0.0.1:{port}",
                *args(folder)]
        self.processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                               stderr=open(folder / f"{tool}.log", "wb")))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{url}/-/ready"), timeout=60, what=f"{tool} ready")
        return url

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def alertmanager(tmp_path):
    """start(config_text) runs Debian's Alertmanager 0.25 on 127.0.0.1; returns its base URL."""
    daemons = Daemons(tmp_path)
    yield lambda config_text: daemons.start(
        "prometheus-alertmanager", "alertmanager.yml", config_text,
        lambda folder: [f"--storage.path={folder / 'data'}", "--cluster.listen-address=", "--log.level=debug"])
    daemons.stop()


@dataclass
class Dockerd:
    host: str
    client: object
    image: str


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory):
    """A private Docker daemon (no bridge, no iptables: loopback only) and a busybox image made by import."""
    from botwatch.up.standins.dockerd import DockerdError, PrivateDockerd
    require_tool("dockerd")
    daemon = PrivateDockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        daemon.start()
    except DockerdError as err:
        pytest.fail(str(err))
    try:
        yield Dockerd(daemon.host, daemon.client, daemon.image)
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """moto's S3 in server mode on 127.0.0.1 (boto3 reaches it through endpoint_url)."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not os.path.exists(binary):
        pytest.fail("moto_server is not installed: the test extra installs moto[server]")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(url + "/moto-api/"), timeout=30, what="moto_server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch):
    """Dummy credentials: moto accepts any, and boto3 must never look for real ones."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def kill_pidfile(path: Path) -> None:
    """Stop a bot that a test's remediator (re)started: it is not the test's child."""
    try:
        pid = int(Path(path).read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or ") Z " in Path(f"/proc/{pid}/stat").read_text(),
             timeout=10, what=f"pid {pid} to stop")


def kill_mentioning(marker: str) -> list[int]:
    """Stop every process whose command line mentions `marker` (a test's own folder): bots a remediator
    started that have not written their pidfile yet, so that a failing test still stops what it started."""
    needle, killed = marker.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:
            continue
    return killed


@pytest.fixture
def prometheus(tmp_path):
    """start(config_text, tsdb=None) runs Debian's Prometheus 2.42 on 127.0.0.1; returns its URL."""
    daemons = Daemons(tmp_path)
    yield lambda config_text, tsdb=None: daemons.start(
        "prometheus", "prometheus.yml", config_text,
        lambda folder: [f"--storage.tsdb.path={tsdb or folder / 'data'}", "--storage.tsdb.retention.time=30d"])
    daemons.stop()


FREQTRADE_VENV = Path(os.environ.get("BOTWATCH_FREQTRADE_VENV", ROOT / ".venv-freqtrade"))


@pytest.fixture(scope="session")
def freqtrade_python() -> str:
    """Python of the Freqtrade venv `make test` installs (Freqtrade 2026.9, never in botwatch's venv)."""
    python = FREQTRADE_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no Freqtrade at {FREQTRADE_VENV}: `make test` installs it (make freqtrade)")
    return str(python)


@pytest.fixture
def freqtrade_db(freqtrade_python, tmp_path):
    """write(name, *flags) -> (path, Freqtrade's own figures): a database written by Freqtrade's code."""
    def write(name: str = "tradesv3.dryrun.sqlite", *flags: str) -> tuple[Path, dict]:
        path = tmp_path / name
        out = subprocess.run([freqtrade_python, str(ROOT / "tests" / "fixtures" / "freqtrade_writer.py"), str(path),
                              *flags], capture_output=True, text=True, timeout=300, check=True)
        with sqlite3.connect(path) as db:    # as after a clean stop: every page in the main file
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path, json.loads(out.stdout.strip().splitlines()[-1])
    return write


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 cluster of the test session's own (initdb in a temp folder, 127.0.0.1)."""
    from botwatch.up.postgres import PostgresCluster, PostgresError
    try:
        cluster = PostgresCluster().start()
    except PostgresError as err:
        pytest.fail(f"PostgreSQL: {err}")
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(postgres, request):
    """A fresh database in the session's cluster, for one test."""
    postgres_url.count = getattr(postgres_url, "count", 0) + 1
    return postgres.create_database(f"t{postgres_url.count}_{os.getpid()}")
