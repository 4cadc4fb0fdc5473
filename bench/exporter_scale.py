"""The exporter at fleet scale: N bots, each with an R-row trade file, pidfile liveness, checks every 5 s.

Runs the real `botwatch exporter` and prints one JSON line:
- cold_start_s: start to the first scrape where every bot has its figures (no checkpoints);
- restart_s: the same after a restart that resumes from the checkpoints;
- rss_mb / peak_rss_mb: the exporter's resident memory once settled, and its high-water mark;
- scrape_p50_ms / scrape_p95_ms while the bots trade and the checks run, against the floor measured in
  the same run: prometheus_client serializing the same samples (serialize_p50_ms);
- grown_scrape_p50_ms and grown_catch_up_s: scrapes while every file grows by 10%, and the time until
  every bot's figures include the growth.

BENCH_BOTS (200) and BENCH_ROWS (100000) size it; BENCH_DEDUP_WINDOW sets every bot's
`data_format.dedup_window` (default: the config's default).
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests


from bench.datafile import row
from botwatch.core.config import DataFormat

BOTS = int(os.environ.get("BENCH_BOTS", 200))
ROWS = int(os.environ.get("BENCH_ROWS", 100_000))
DEDUP_WINDOW = os.environ.get("BENCH_DEDUP_WINDOW")
SCRAPES = int(os.environ.get("BENCH_SCRAPES", 150))
SETTLE = float(os.environ.get("BENCH_SETTLE", 6))      # a check round (5 s) and the checkpoints it writes
HEADER = "timestamp,trade_id,symbol,side,price,qty,fee\n"


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def rows_by_bot(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        if line.startswith("tradingbot_data_file_rows{"):
            name = line.split('bot="', 1)[1].split('"', 1)[0]
            found[name] = int(float(line.rsplit(" ", 1)[1]))
    return found


class Exporter:
    def __init__(self, config: Path, state: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botwatch", "exporter", "--config", str(config), "--listen", f"127.0.0.1:{port}",
             "--state-dir", str(state)], stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
        self.session = requests.Session()

    def scrape(self) -> tuple[float, str]:
        started = time.perf_counter()
        text = self.session.get(self.url, timeout=30).text
        return time.perf_counter() - started, text

    def until_rows(self, wanted: dict[str, int], timeout: float = 600) -> float:
        """Seconds from now until a scrape shows every bot at (at least) its wanted row count."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                _, text = self.scrape()
            except requests.RequestException:
                time.sleep(0.05)
                continue
            have = rows_by_bot(text)
            if all(have.get(name, -1) >= count for name, count in wanted.items()):
                return time.monotonic() - started
            time.sleep(0.05)
        raise SystemExit(f"the exporter did not catch up in {timeout}s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def serialize_floor(text: str, runs: int = 30) -> float:
    """p50 seconds prometheus_client takes to serialize the samples of one scrape."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))

    class Same:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Same())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as tmp:
        run(Path(tmp))


def run(tmp: Path) -> None:
    data = tmp / "data"
    data.mkdir()
    template = data / "template.csv"
    with open(template, "w") as f:
        f.write(HEADER)
        f.writelines(row(i) for i in range(ROWS))
    pidfile = tmp / "bot.pid"
    pidfile.write_text(str(os.getpid()))
    bots = []
    for n in range(BOTS):
        path = data / f"bot{n}.csv"
        shutil.copyfile(template, path)
        bots.append({"name": f"bot{n}", "pidfile": str(pidfile), "check_interval": 5, "data_file": str(path)})
        if DEDUP_WINDOW:
            bots[-1]["data_format"] = {"dedup_window": int(DEDUP_WINDOW)}
    config = tmp / "bots.json"
    config.write_text(json.dumps({"bots": bots}))
    wanted = {bot["name"]: ROWS for bot in bots}
    state = tmp / "state"
    port = 20000 + os.getpid() % 20000

    exporter = Exporter(config, state, port, tmp / "exporter.log")
    cold = exporter.until_rows(wanted)
    time.sleep(SETTLE)
    rss, peak = rss_mb(exporter.process.pid)

    # the bots trade (a row each every ~second, across the fleet) while scrapes are timed
    stop = threading.Event()
    written = {bot["name"]: ROWS for bot in bots}

    def trade() -> None:
        i = ROWS
        while not stop.is_set():
            for bot in bots:
                with open(bot["data_file"], "a") as f:
                    f.write(row(i))
                written[bot["name"]] += 1
            i += 1
            stop.wait(1.0)

    trader = threading.Thread(target=trade, daemon=True)
    trader.start()
    times, text = [], ""
    for _ in range(SCRAPES):
        elapsed, text = exporter.scrape()
        times.append(elapsed)
        time.sleep(0.1)
    stop.set()
    trader.join()
    floor = serialize_floor(text)

    grow = ROWS // 10
    start_at = max(written.values())
    grown_times: list[float] = []
    for bot in bots:
        with open(bot["data_file"], "a") as f:
            f.writelines(row(i) for i in range(start_at, start_at + grow))
        written[bot["name"]] += grow
    started = time.monotonic()
    caught_up = None
    while caught_up is None:
        elapsed, text = exporter.scrape()
        grown_times.append(elapsed)
        have = rows_by_bot(text)
        if all(have.get(name, -1) >= count for name, count in written.items()):
            caught_up = time.monotonic() - started
        time.sleep(0.1)
    time.sleep(SETTLE)
    exporter.stop()

    exporter = Exporter(config, state, port, tmp / "exporter.log")
    restart = exporter.until_rows(written)
    resumed = (tmp / "exporter.log").read_text().count("resumed from the checkpoint")
    exporter.stop()

    print(json.dumps({
        "bench": "exporter_scale", "bots": BOTS, "rows_per_bot": ROWS,
        "dedup_window": int(DEDUP_WINDOW or DataFormat().dedup_window),
        "cold_start_s": round(cold, 2), "restart_s": round(restart, 2), "bots_resumed": resumed,
        "rss_mb": round(rss, 1), "peak_rss_mb": round(peak, 1), "target_rss_mb": 150,
        "target_cold_start_s": 30, "target_restart_s": 5,
        "scrape_p50_ms": round(statistics.median(times) * 1000, 1),
        "scrape_p95_ms": round(percentile(times, 0.95) * 1000, 1),
        "serialize_p50_ms": round(floor * 1000, 1),
        "scrape_p95_over_floor": round(percentile(times, 0.95) / floor, 2), "target_p95_over_floor": 3,
        "grown_scrape_p50_ms": round(statistics.median(grown_times) * 1000, 1),
        "grown_catch_up_s": round(caught_up, 2),
    }))


if __name__ == "__main__":
    main()
