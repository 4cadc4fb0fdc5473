"""Kill → up: how long a paperbot killed with SIGKILL stays down, through the whole real loop (exporter,
Prometheus, Alertmanager, the remediator's restart playbook), at fast and at default timings.

Each timing runs `botwatch up` with BENCH_MTTR_KILLS paperbots (fast 5, default 3) and kills each once,
at a random moment of its check cycle (one kill per bot: a second one inside healthy_reset_after would
wait out the restart backoff, which is policy, not speed). Up = the pidfile names a new, live process.

The floor is the mean of what the alert path cannot avoid, from the timings: the kill is seen by the next
check (half an interval on average) and confirmed by one more (TradingBotDown needs 2 failed checks);
Prometheus scrapes that (half a scrape interval) and evaluates the rule (half an evaluation interval);
Alertmanager's remediate route has no group_wait; then the restart itself (start command → live pid),
measured here. Target: MTTR ≤ 1.2 × floor.

Prints one JSON line per timing.
"""

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from botwatch.up.stack import TIMINGS, running_pid
from botwatch.core.units import parse_duration

BOTWATCH = [sys.executable, "-m", "botwatch"]     # the interpreter running this: any venv, any checkout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paperbot(name: str, folder: Path, check_interval: float) -> dict:
    port = free_port()
    files = {key: str(folder / f"{name}.{ext}")
             for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
    argv = BOTWATCH + ["paperbot", "--name", name, "--trade-interval", "1", "--health-port", str(port),
                       "--data-file", files["data_file"], "--journal", files["journal"], "--pidfile", files["pidfile"],
                       "--log-file", files["log_file"]]
    return {"name": name, "type": "spot", "check_interval": check_interval,
            "health_endpoint": f"http://127.0.0.1:{port}/health", "start_command": argv, **files}


def restart_time(bot: dict) -> float:
    """Median seconds from running the start command to a live pid in the pidfile."""
    times = []
    for _ in range(3):
        Path(bot["pidfile"]).unlink(missing_ok=True)
        started = time.monotonic()
        process = subprocess.Popen(bot["start_command"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        while running_pid(Path(bot["pidfile"])) is None:
            time.sleep(0.01)
        times.append(time.monotonic() - started)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    for suffix in ("data_file", "journal", "pidfile", "log_file"):
        Path(bot[suffix]).unlink(missing_ok=True)
    return statistics.median(times)


def measure(timings: str, kills: int, rng: random.Random) -> dict:
    t = TIMINGS[timings]
    check = float(t["check_interval"])
    scrape = parse_duration(t["scrape"])
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-mttr-{timings}-"))
    bots = [paperbot(f"mttr{n}", tmp, check) for n in range(kills)]
    restart = restart_time(bots[0])
    floor = 1.5 * check + scrape / 2 + scrape / 2 + restart
    (tmp / "bots.json").write_text(json.dumps({"bots": bots}))
    stack = subprocess.Popen(BOTWATCH + ["up", "--config", str(tmp / "bots.json"), "--timings", timings,
                                         "--state-dir", str(tmp / "stack")], cwd=ROOT,
                             stdout=open(tmp / "stack.log", "wb"), stderr=subprocess.STDOUT)
    downs = []
    try:
        deadline = time.monotonic() + 180
        while not (tmp / "stack" / "stack.json").exists() or any(running_pid(Path(b["pidfile"])) is None for b in bots):
            if time.monotonic() > deadline or stack.poll() is not None:
                raise SystemExit(f"the {timings} stack did not come up: see {tmp / 'stack.log'}")
            time.sleep(0.2)
        time.sleep(3 * max(check, scrape))                # every bot seen up by Prometheus
        for bot in bots:
            pidfile = Path(bot["pidfile"])
            time.sleep(rng.uniform(0, check))             # a random moment of the check cycle
            pid = running_pid(pidfile)
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            while True:
                now_pid = running_pid(pidfile)
                if now_pid is not None and now_pid != pid:
                    break
                if time.monotonic() - killed > 600:
                    raise SystemExit(f"{bot['name']} was not restarted in 10 min")
                time.sleep(0.02)
            downs.append(time.monotonic() - killed)
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    mttr = statistics.mean(downs)
    return {"bench": "mttr", "timings": timings, "kills": len(downs), "mttr_s": round(mttr, 2),
            "max_s": round(max(downs), 2), "floor_s": round(floor, 2), "restart_s": round(restart, 2),
            "mttr_over_floor": round(mttr / floor, 2), "target_over_floor": 1.2}


def main() -> None:
    rng = random.Random(int(os.environ.get("BENCH_SEED", 1)))
    for timings in os.environ.get("BENCH_MTTR_TIMINGS", "fast,default").split(","):
        kills = int(os.environ.get("BENCH_MTTR_KILLS", 5 if timings == "fast" else 3))
        print(json.dumps(measure(timings, kills, rng)), flush=True)


if __name__ == "__main__":
    main()
