"""Kill → serving again, at the shipped defaults: `botwatch up --timings default` on a user's config (checks
every 60 s, Prometheus every 15 s, the default rules and remediation; `remediation.fast_path` on, as shipped).

- process: BENCH_MTTR_KILLS (30) SIGKILLs of paperbots (BENCH_MTTR_BOTS of them, in turn), each at a random
  moment; down = the kill → the health endpoint answering from a new process.
- container: the same for busybox-httpd containers on a private dockerd (SIGKILL of the container's process
  from the host, as a crash or the kernel's OOM killer would: no Docker API call).
- policy: the floor, a bare `restart: always` container of the same image on the same dockerd, killed the
  same way: what a restart policy gives, with none of botwatch's guarantees.
Target: p95 ≤ 3 s for both kinds, within 2.5 s of the restart policy's p95.

Between two kills of one bot its restart job has ended and its attempts are reset (`POST /reset/BOT`, what an
hour of health does: healthy_reset_after): at the defaults a second restart within the hour waits 5 minutes
by design, which is policy, not speed. That the policy still holds on the fast path is shown by `safety`
(short timings: backoff 5 s, 15 s, 30 s): one bot killed five times in a row, each time once its restart
was verified — at once, then after 5, 15 and 30 s, then the circuit; a paused bot killed — not restarted until resumed; the exporter killed and a bot
killed while it is away — restarted by the alert path once the exporter is back.

Prints one JSON line per part. BENCH_MTTR_PARTS=process,container,policy,safety chooses parts.
"""

from __future__ import annotations

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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from botwatch.up.stack import running_pid, service_pid  # noqa: E402
from botwatch.up.standins.dockerd import PrivateDockerd  # noqa: E402

BOTWATCH = [sys.executable, "-m", "botwatch"]     # the interpreter running this: any venv, any checkout
TARGET_P95, TARGET_OVER_POLICY = 3.0, 2.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 1.0, headers: dict | None = None, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def serving(url: str) -> bool:
    try:
        get(url, timeout=0.5)
        return True
    except OSError:
        return False


def wait(predicate, timeout: float, what: str, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def figures(downs: list[float]) -> dict:
    ordered = sorted(downs)
    return {"kills": len(downs), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3), "max_s": round(ordered[-1], 3)}


def paperbot(name: str, folder: Path) -> dict:
    port = free_port()
    files = {key: str(folder / f"{name}.{ext}")
             for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
    argv = BOTWATCH + ["paperbot", "--name", name, "--trade-interval", "1", "--health-port", str(port),
                       "--data-file", files["data_file"], "--journal", files["journal"], "--pidfile", files["pidfile"],
                       "--log-file", files["log_file"]]
    return {"name": name, "type": "spot", "health_endpoint": f"http://127.0.0.1:{port}/health", "start_command": argv,
            **files}


def httpd_command(port: int) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo ok > /www/health && exec httpd -f -p 127.0.0.1:{port} -h /www"]


class Stack:
    """`botwatch up` on a config, until closed."""

    def __init__(self, tmp: Path, config: dict, timings: str, env: dict | None = None):
        self.tmp = tmp
        (tmp / "bots.json").write_text(json.dumps(config))
        self.process = subprocess.Popen(BOTWATCH + ["up", "--config", str(tmp / "bots.json"), "--timings", timings,
                                                    "--state-dir", str(tmp / "stack")], cwd=ROOT,
                                        stdout=open(tmp / "stack.log", "wb"), stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        info = tmp / "stack" / "stack.json"
        wait(lambda: info.exists() or self.process.poll() is not None, 180, "the stack", every=0.2)
        if self.process.poll() is not None:
            raise SystemExit(f"the stack did not come up: see {tmp / 'stack.log'}")
        self.info = json.loads(info.read_text())
        self.token = (tmp / "stack" / "secrets" / "webhook_token").read_text().strip()

    def metric(self, name: str, **labels) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in get(self.info["remediator"] + "/metrics", timeout=5).decode().splitlines():
            if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def idle(self) -> bool:
        return self.metric("botwatch_jobs", state="running") == 0 and self.metric("botwatch_jobs", state="queued") == 0

    def reset(self, bot: str) -> None:
        get(f"{self.info['remediator']}/reset/{bot}", timeout=10, headers={"Authorization": f"Bearer {self.token}"},
            data=b"")

    def botwatch(self, *words: str) -> str:
        token = self.tmp / "stack" / "secrets" / "webhook_token"
        return subprocess.run(BOTWATCH + [*words, "--remediator", self.info["remediator"], "--token-file", str(token)],
                              capture_output=True, text=True, timeout=60, check=True).stdout

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def kill_and_time(kill, url: str, is_new) -> float:
    """Kill, then the seconds until `url` answers from a new process (`is_new()`)."""
    killed = time.monotonic()
    kill()
    wait(lambda: is_new() and serving(url), 600, f"{url} serving again")
    return time.monotonic() - killed


def measure_processes(kills: int, bots: int, rng: random.Random) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-mttr-process-"))
    config = {"bots": [paperbot(f"mttr{n}", tmp) for n in range(bots)]}
    stack = Stack(tmp, config, "default")
    downs = []
    try:
        for bot in config["bots"]:
            wait(lambda b=bot: running_pid(b["pidfile"]) and serving(b["health_endpoint"]), 120, f"{bot['name']} up")
        for n in range(kills):
            bot = config["bots"][n % bots]
            wait(stack.idle, 120, "no job running", every=0.2)
            stack.reset(bot["name"])
            time.sleep(rng.uniform(0, 2))                  # a random moment
            pid = running_pid(bot["pidfile"])
            downs.append(kill_and_time(lambda: os.kill(pid, signal.SIGKILL), bot["health_endpoint"],
                                       lambda b=bot, p=pid: running_pid(b["pidfile"]) not in (None, p)))
        wait(stack.idle, 120, "the last restart verified", every=0.2)
        restarts = sum(stack.metric("botwatch_bot_restarts_total", bot=b["name"]) for b in config["bots"])
    finally:
        stack.close()
        for bot in config["bots"]:
            pid = running_pid(bot["pidfile"])
            if pid:
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"bench": "mttr", "part": "process", "timings": "default", **figures(downs), "restarts": int(restarts)}


def container_pid(client, name: str) -> int | None:
    container = client.containers.get(name)
    state = container.attrs["State"]
    return state["Pid"] if state.get("Running") else None


def measure_containers(dockerd: PrivateDockerd, kills: int, bots: int, rng: random.Random, policy: bool) -> dict:
    """Botwatch's container bots (no restart policy), or with `policy` the bare restart-policy floor."""
    client = dockerd.client
    ports = [free_port() for _ in range(bots)]
    names = [f"{'policy' if policy else 'mttr'}-c{n}" for n in range(bots)]
    for name, port in zip(names, ports):
        client.containers.run(dockerd.image, httpd_command(port), name=name, detach=True, network_mode="host",
                              restart_policy={"Name": "always"} if policy else None)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mttr-container-"))
    stack = None
    downs = []
    try:
        if not policy:
            config = {"bots": [{"name": name, "type": "spot", "container": name, "data_file": str(tmp / f"{name}.csv"),
                                "health_endpoint": f"http://127.0.0.1:{port}/health"}
                               for name, port in zip(names, ports)]}
            stack = Stack(tmp, config, "default", env={"DOCKER_HOST": dockerd.host})
        for port in ports:
            wait(lambda p=port: serving(f"http://127.0.0.1:{p}/health"), 60, "httpd up")
        for n in range(kills):
            name, port = names[n % bots], ports[n % bots]
            if stack:
                wait(stack.idle, 120, "no job running", every=0.2)
                stack.reset(name)
            time.sleep(rng.uniform(0, 2))
            pid = wait(lambda nm=name: container_pid(client, nm), 60, f"{name} running")
            downs.append(kill_and_time(lambda p=pid: os.kill(p, signal.SIGKILL), f"http://127.0.0.1:{port}/health",
                                       lambda nm=name, p=pid: container_pid(client, nm) not in (None, p)))
        if stack:
            wait(stack.idle, 120, "the last restart verified", every=0.2)
        restarts = sum(stack.metric("botwatch_bot_restarts_total", bot=name) for name in names) if stack else None
    finally:
        if stack:
            stack.close()
        for name in names:
            client.containers.get(name).remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)
    part = "policy" if policy else "container"
    return {"bench": "mttr", "part": part, "timings": "default", **figures(downs),
            **({"restarts": int(restarts)} if restarts is not None else {"restart_policy": "always"})}


def measure_safety() -> dict:
    """The guarantees the fast path keeps, at short timings (backoff 5 s, 15 s, 30 s; 3 more attempts)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-mttr-safety-"))
    bots = [{**paperbot(name, tmp), "check_interval": 1} for name in ("loop", "held", "blind")]
    config = {"bots": bots, "remediation": {"backoff": ["5s", "15s", "30s"], "max_attempts": 3,
                                            "verify_within": "20s"}}
    stack = Stack(tmp, config, "fast")
    result = {"bench": "mttr", "part": "safety"}
    try:
        for bot in bots:
            wait(lambda b=bot: running_pid(b["pidfile"]) and serving(b["health_endpoint"]), 120, f"{bot['name']} up")
        loop = bots[0]
        started = time.monotonic()
        backs = []
        for _ in range(5):                    # killed again as soon as its restart is verified
            pid = wait(lambda: running_pid(loop["pidfile"]), 120, "loop running")
            wait(stack.idle, 120, "its restart verified", every=0.2)
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            try:
                wait(lambda p=pid: running_pid(loop["pidfile"]) not in (None, p), 60, "loop restarted")
            except SystemExit:
                backs.append(None)
                break
            backs.append(round(time.monotonic() - killed, 1))
        result["loop_back_after_s"] = backs
        result["loop_circuit_open"] = stack.metric("botwatch_circuit_open", bot="loop") == 1
        result["loop_restarts"] = int(stack.metric("botwatch_bot_restarts_total", bot="loop"))
        result["loop_seconds"] = round(time.monotonic() - started, 1)

        held = bots[1]
        stack.botwatch("pause", "held", "--for", "10m", "--reason", "bench")
        pid = running_pid(held["pidfile"])
        os.kill(pid, signal.SIGKILL)
        time.sleep(20)                                      # what "not restarted" means here: 20 s after the kill
        result["paused_restarted_within_20s"] = running_pid(held["pidfile"]) is not None
        stack.botwatch("resume", "held")
        killed = time.monotonic()
        wait(lambda: running_pid(held["pidfile"]) not in (None, pid), 120, "held restarted after resume")
        result["resumed_back_after_s"] = round(time.monotonic() - killed, 1)

        blind = bots[2]
        os.kill(service_pid(tmp / "stack" / "stack.json", "exporter"), signal.SIGKILL)
        pid = running_pid(blind["pidfile"])
        os.kill(pid, signal.SIGKILL)                        # while the exporter is away: no pidfd saw it
        killed = time.monotonic()
        wait(lambda: running_pid(blind["pidfile"]) not in (None, pid), 300, "blind restarted by the alert path")
        result["exporter_killed_bot_back_after_s"] = round(time.monotonic() - killed, 1)
    finally:
        stack.close()
        for bot in bots:
            pid = running_pid(bot["pidfile"])
            if pid:
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    rng = random.Random(int(os.environ.get("BENCH_SEED", 1)))
    kills = int(os.environ.get("BENCH_MTTR_KILLS", 30))
    bots = int(os.environ.get("BENCH_MTTR_BOTS", 5))
    parts = os.environ.get("BENCH_MTTR_PARTS", "process,container,policy,safety").split(",")
    lines = []
    if "process" in parts:
        lines.append(measure_processes(kills, bots, rng))
        print(json.dumps(lines[-1]), flush=True)
    if "container" in parts or "policy" in parts:
        dockerd = PrivateDockerd(Path(tempfile.mkdtemp(prefix="bench-mttr-dockerd-"))).start()
        try:
            for part in ("container", "policy"):
                if part in parts:
                    lines.append(measure_containers(dockerd, kills, bots, rng, policy=part == "policy"))
                    print(json.dumps(lines[-1]), flush=True)
        finally:
            dockerd.stop()
            shutil.rmtree(dockerd.root, ignore_errors=True)
    if "safety" in parts:
        print(json.dumps(measure_safety()), flush=True)
    by_part = {line["part"]: line for line in lines}
    if "policy" in by_part:
        floor = by_part["policy"]["p95_s"]
        verdict = {part: {"p95_s": by_part[part]["p95_s"], "target_p95_s": TARGET_P95,
                          "over_policy_p95_s": round(by_part[part]["p95_s"] - floor, 3),
                          "target_over_policy_s": TARGET_OVER_POLICY,
                          "met": by_part[part]["p95_s"] <= TARGET_P95
                          and by_part[part]["p95_s"] - floor <= TARGET_OVER_POLICY}
                   for part in ("process", "container") if part in by_part}
        print(json.dumps({"bench": "mttr", "part": "verdict", "policy_p95_s": floor, **verdict}), flush=True)


if __name__ == "__main__":
    main()
