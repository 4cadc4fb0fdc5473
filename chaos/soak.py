"""`make chaos`: the fast-timings stack under a seeded random schedule of faults, scored in one JSON line.

`botwatch up --timings fast --ha` (two Alertmanager peers, two Prometheus servers; `--single` for one of
each) runs BOTS paperbots for DURATION while faults are injected at random moments (mean gap `--gap`),
each kind in turn from a shuffled deck, one at a time per bot and per service:

  bot-kill            SIGKILL of a bot                         healed: a new pid answering /health   1 start
  bot-stop            SIGSTOP of a bot (alive, silent)         healed: a new pid answering /health   1 start
  store               one corruption of the bot's trade CSV    healed: restored since, valid, the    1 start
                      (every check the exporter makes, in      journal's trades exactly, answering
                      turn, that a live file can get)
  auth-errors         API-key error lines in the bot's log     healed: its on_auth_error ran         0 starts
  rate-limit          rate-limit lines in the bot's log        healed: its on_rate_limit ran         0 starts
  remediator-kill     a bot killed, then SIGKILL of the        healed: as bot-kill, the remediator   1 start
                      remediator once its restart is running   answering again
  exporter-kill       SIGKILL of the exporter                  healed: /metrics answers again        0 starts
  alertmanager-kill   SIGKILL of one Alertmanager peer         healed: ready, the cluster whole      0 starts
  prometheus-restart  SIGTERM of one Prometheus server         healed: ready again                   0 starts

The stack starts an exited service again, as systemd would; the remediator must do the rest. A bot gets a
fault that needs a restart only once its restart count has been reset (healthy for healthy_reset_after):
a second one sooner waits out the restart backoff, which is policy, not recovery.

Scored: faults injected and healed; recovery time per kind (p50/p95/max, from the fault to healed);
trades lost and duplicated — each restored file against the bot's journal when it is healed, and every
bot's file against its journal once the stack has stopped; bot starts (each start command run is
logged) per fault, duplicates (more than the fault needs) and spurious ones (outside any fault); 5xx
answers of the webhook; per bot the time it did not answer /health, against the floor its faults make
unavoidable (the detection and restart times of the timings). `ok` is true when nothing was lost,
duplicated or started needlessly, no 5xx, and every fault healed.

    python -m chaos.soak --duration 30m --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from botwatch.core.liveness import ProcessCmdlineProbe
from botwatch.core.serve import free_port
from botwatch.core.presets import open_database
from botwatch.core.tradefile import validate_file
from botwatch.up.demo import find_freqtrade, freqtrade_bot
from botwatch.up.standins.localexchange import LocalExchange
from botwatch.core.units import parse_duration
from botwatch.up.stack import running_pid, service_pid
from botwatch.remediator.playbooks import BY_ALERT
from chaos.faults import (BOT_KINDS, CHECK, CORRUPTIONS, HEALTH_TIMEOUT, RESET_AFTER, RESTARTING, SERVICE_KINDS,
                          SQLITE_DAMAGE, STARTS, STOP_TIMEOUT, Fault, append_to)
from chaos.score import closed_trades, csv_ids, journal_ids, score, stamps, twice

ROOT = Path(__file__).resolve().parent.parent
BOTWATCH = [sys.executable, "-m", "botwatch"]
LOG_WINDOW = 60 + 15                              # the fast rules' auth/rate-limit window, and a margin
SERVICE_GAP = 15.0                                # seconds between two faults of one service
HEAL_TIMEOUT = 180.0
PROBE_EVERY = 0.25


# -- the stack and its bots --------------------------------------------------------------------------------

def http_ok(url: str, timeout: float = 1.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read() if response.status == 200 else None
    except (OSError, ValueError):
        return None

def paperbot(name: str, folder: Path, seed: int) -> dict:
    port = free_port()
    files = {key: str(folder / f"{name}.{ext}")
             for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
    argv = BOTWATCH + ["paperbot", "--name", name, "--seed", str(seed), "--trade-interval", "0.5",
                       "--health-port", str(port), "--data-file", files["data_file"], "--journal", files["journal"],
                       "--pidfile", files["pidfile"], "--log-file", files["log_file"]]
    return marked({"name": name, "type": "spot", "check_interval": CHECK,
                   "health_endpoint": f"http://127.0.0.1:{port}/health", "health_timeout": HEALTH_TIMEOUT,
                   "stop_timeout": STOP_TIMEOUT, "starting_balance": 1000, "stale_after": "30s", **files,
                   "start_command": argv}, folder)

def marked(bot: dict, folder: Path) -> dict:
    """The bot with each run of its start command, its on_auth_error and its on_rate_limit time-stamped in a
    file of its own (FOLDER/NAME.starts, .auth, .ratelimit)."""
    marks = {kind: str(folder / f"{bot['name']}.{kind}") for kind in ("starts", "auth", "ratelimit")}
    stamp = 'date +%s.%N >> "$0"'
    return {**bot, "start_command": ["sh", "-c", f'{stamp}; shift; exec "$@"', marks["starts"], "--",
                                     *bot["start_command"]],
            "on_auth_error": ["sh", "-c", stamp, marks["auth"]], "on_rate_limit": ["sh", "-c", stamp, marks["ratelimit"]]}

def start_time(argv: list[str], up, runs: int = 3, env: dict | None = None) -> float:
    """Median seconds from a start command to `up()` (the floor's last part), the bot stopped after each."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   env=env)
        while not up() and time.monotonic() - started < 120:
            time.sleep(0.01)
        times.append(time.monotonic() - started)
        process.kill()                # only its start is measured (a Freqtrade's SIGTERM stop takes seconds)
        process.wait()
    return statistics.median(times)


class Soak:
    def __init__(self, workdir: Path, seed: int, duration: float, bots: int, gap: float, ha: bool,
                 freqtrade: str | None = None):
        self.dir, self.seed, self.duration, self.gap, self.ha = workdir, seed, duration, gap, ha
        self.freqtrade, self.exchange, self.ft = freqtrade, None, None
        self.rng = random.Random(seed)
        self.folder = workdir / "bots"
        self.folder.mkdir(parents=True)
        self.bots = {f"chaos-{n}": paperbot(f"chaos-{n}", self.folder, seed * 100 + n) for n in range(bots)}
        self.state = workdir / "stack"
        self.faults: list[Fault] = []
        self.open: dict[str, Fault] = {}                  # target -> its fault in progress
        self.last: dict[tuple[str, str], float] = {}      # (target, group) -> when its last fault healed
        self.samples = {name: [] for name in self.bots}   # (time, answered) from the /health probes
        self.http_5xx = 0
        self.restores_checked, self.lost_at_restore, self.duplicated_at_restore = 0, 0, 0
        self.baseline: dict[str, int] = {}
        self.stopping = threading.Event()
        self.deck: list[str] = []
        self.corruptions: list[str] = []
        self.numbering = 0
        self.env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}  # Freqtrade logs to its file
        self.restart_s: dict[str, float] = {}           # bot -> how long its start command takes to bring it up

    # -- running the stack ---------------------------------------------------------------------------------

    def start(self) -> None:
        timing = paperbot("chaos-timing", self.folder, 0)
        paper = start_time(timing["start_command"], lambda: running_pid(timing["pidfile"]))
        for path in self.folder.glob("chaos-timing.*"):
            path.unlink()
        self.restart_s = dict.fromkeys(self.bots, paper)
        if self.freqtrade:
            self.exchange = LocalExchange()
            bot = freqtrade_bot(self.dir, self.freqtrade, self.exchange.url, free_port())
            self.ft = bot["name"]
            self.bots[self.ft] = marked(bot, self.folder)
            self.samples[self.ft] = []
            self.restart_s[self.ft] = start_time(bot["start_command"], lambda: http_ok(self._health(self.ft)), 1,
                                                 self.env)
            for suffix in ("", "-wal", "-shm"):               # it starts with an empty database in the stack
                Path(bot["data_file"] + suffix).unlink(missing_ok=True)
        config = self.dir / "bots.json"
        config.write_text(json.dumps({"bots": list(self.bots.values())}, indent=2))
        argv = BOTWATCH + ["up", "--config", str(config), "--timings", "fast", "--state-dir", str(self.state)]
        self.process = subprocess.Popen(argv + (["--ha"] if self.ha else []), cwd=ROOT, stdout=open(
            self.dir / "stack.log", "wb"), stderr=subprocess.STDOUT, env=self.env)
        self._wait(lambda: (self.state / "stack.json").exists(), 180, "the stack up")
        self.info = json.loads((self.state / "stack.json").read_text())
        self.prometheis = [self.info[n] for n in ("prometheus", "prometheus-2") if n in self.info]
        self._wait(lambda: all(self._value(url, f'tradingbot_up{{bot="{b}"}}') == 1 for url in self.prometheis
                               for b in self.bots), 120, "every bot up in Prometheus")
        self._wait(lambda: all(self._value(self.prometheis[0], f'botwatch_last_backup_timestamp_seconds{{bot="{b}"}}')
                               for b in self.bots), 180, "a first backup of every bot")
        self.baseline = {name: len(stamps(self._mark(name, "starts"))) for name in self.bots}
        for name in self.bots:
            threading.Thread(target=self._probe, args=(name,), daemon=True).start()
        threading.Thread(target=self._count_5xx, daemon=True).start()

    def stop(self) -> int | None:
        self.stopping.set()
        for fault in self.faults:                         # nothing stays frozen past the soak
            if fault.kind == "bot-stop" and fault.old_pid:
                _signal(fault.old_pid, signal.SIGCONT)
        if not hasattr(self, "process"):          # it failed before the stack was started
            if self.exchange:
                self.exchange.close()
            return None
        alive = self.process.poll() is None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for name in self.bots:
            _signal(self._pid(name), signal.SIGKILL)
        if self.exchange:
            self.exchange.close()
        return self.process.returncode if alive else None

    def _pid(self, name: str) -> int | None:
        bot = self.bots[name]
        return ProcessCmdlineProbe(bot["process_cmdline"])().pid if name == self.ft else running_pid(bot["pidfile"])

    def _health(self, name: str) -> str:
        bot = self.bots[name]
        return bot["api_url"] + "/api/v1/ping" if name == self.ft else bot["health_endpoint"]

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process.poll() is not None:
                raise SystemExit(f"botwatch up exited ({self.process.returncode}) while waiting for {what}: "
                                 f"see {self.dir / 'stack.log'}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no {what} within {timeout:g}s: see {self.dir / 'stack.log'}")
            time.sleep(0.2)

    def _value(self, prometheus: str, expr: str) -> float | None:
        body = http_ok(f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=2)
        if body is None:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def _alerts_quiet(self, bot: str) -> bool:
        """No alert a playbook acts on pending or firing for the bot in any Prometheus (unknown counts as not
        quiet): a fault starts a fresh incident. Others (the uptime budget's burn, which the soak sets off
        on purpose) do not hold the next fault back."""
        acted_on = "|".join(sorted(BY_ALERT))
        query = urllib.parse.quote(f'ALERTS{{bot="{bot}",alertname=~"{acted_on}"}}')
        for url in self.prometheis:
            body = http_ok(f"{url}/api/v1/query?query={query}", timeout=2)
            if body is None or json.loads(body)["data"]["result"]:
                return False
        return True

    def _probe(self, name: str) -> None:
        url = self._health(name)
        while not self.stopping.is_set():
            began = time.monotonic()
            self.samples[name].append((time.time(), http_ok(url, timeout=0.5) is not None))
            time.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - began)))

    def _count_5xx(self) -> None:
        """The webhook's 5xx answers, from the remediator's counter (a restart resets it: summed across)."""
        seen: dict[str, float] = {}
        while not self.stopping.is_set():
            body = http_ok(self.info["remediator"] + "/metrics", timeout=1)
            for line in (body or b"").decode().splitlines():
                if line.startswith('botwatch_webhook_requests_total{code="5'):
                    code, value = line.split('"')[1], float(line.rsplit(" ", 1)[1])
                    before = seen.get(code, 0.0)
                    self.http_5xx += int(value - before if value >= before else value)
                    seen[code] = value
            time.sleep(0.5)

    def _mark(self, bot: str, kind: str) -> str:
        return str(self.folder / f"{bot}.{kind}")

    # -- faults --------------------------------------------------------------------------------------------

    def run(self) -> None:
        began = time.monotonic()
        next_at = began + self.rng.uniform(1, self.gap)
        while time.monotonic() - began < self.duration:
            self._check_open()
            if time.monotonic() >= next_at:
                injected = self._inject_next()
                next_at = time.monotonic() + (self.rng.expovariate(1 / self.gap) if injected else 1.0)
            if self.process.poll() is not None:
                raise SystemExit(f"botwatch up exited ({self.process.returncode}) during the soak: "
                                 f"see {self.dir / 'stack.log'}")
            time.sleep(0.1)
        deadline = time.monotonic() + HEAL_TIMEOUT            # the last faults get their time to heal
        while self.open and time.monotonic() < deadline:
            self._check_open()
            time.sleep(0.1)
        time.sleep(10)                                      # a late duplicate restart would show now

    def _inject_next(self) -> bool:
        """The first kind in the deck that has a free target now; a new shuffled deck when it is empty, or
        when nothing in it can go now (bots waiting out their restart-count reset) and it is short."""
        kinds = BOT_KINDS + SERVICE_KINDS
        if not self.deck:
            self.deck = self.rng.sample(kinds, len(kinds))
        if self._inject_from_deck():
            return True
        if len(self.deck) < 2 * len(kinds):
            self.deck += self.rng.sample(kinds, len(kinds))
        return False

    def _inject_from_deck(self) -> bool:
        for index, kind in enumerate(self.deck):
            fault = self._try(kind)
            if fault is not None:
                del self.deck[index]
                self.faults.append(fault)
                self.open[fault.target] = fault
                print(f"[{time.strftime('%H:%M:%S')}] {kind} {fault.target} {fault.detail}", file=sys.stderr,
                      flush=True)
                return True
        return False

    def _free_bot(self, kind: str) -> str | None:
        now = time.time()
        group = "restart" if kind in RESTARTING else kind
        wait = RESET_AFTER if kind in RESTARTING else LOG_WINDOW if kind in ("auth-errors", "rate-limit") else 10
        names = [name for name in self.bots if name not in self.open
                 and now - self.last.get((name, group), 0) >= wait and now - self.last.get((name, "any"), 0) >= 10]
        self.rng.shuffle(names)
        for name in names:
            if self._alerts_quiet(name) and self._pid(name):
                return name
        return None

    def _try(self, kind: str) -> Fault | None:
        if kind in SERVICE_KINDS:
            return self._service_fault(kind)
        if kind == "remediator-kill" and time.time() - self.last.get(("remediator", "any"), 0) < SERVICE_GAP:
            return None
        name = self._free_bot(kind)
        if name is None:
            return None
        bot = self.bots[name]
        pid = self._pid(name)
        fault = Fault(kind, name, time.time(), old_pid=pid, expected_starts=STARTS[kind])
        if kind in ("bot-kill", "remediator-kill"):
            _signal(pid, signal.SIGKILL)
            if kind == "remediator-kill":
                fault.mid_playbook = self._kill_remediator_mid_restart(name, fault.injected)
                fault.detail = "killed mid-playbook" if fault.mid_playbook else "killed before the playbook started"
        elif kind == "bot-stop":
            _signal(pid, signal.SIGSTOP)
        elif kind == "store" and name == self.ft:
            check = self.rng.choice(sorted(SQLITE_DAMAGE))
            fault.extra.update(check=check, closed=closed_trades(bot["data_file"]))
            fault.detail = f"{check} ({SQLITE_DAMAGE[check](Path(bot['data_file']), self.rng)})"
        elif kind == "store":
            if not self.corruptions:
                self.corruptions = sorted(CORRUPTIONS)
                self.rng.shuffle(self.corruptions)
            check = self.corruptions.pop()
            self.numbering += 1
            try:
                detail = CORRUPTIONS[check](Path(bot["data_file"]), self.numbering, self.rng)
            except ValueError:                  # the file is too young for this one: another time
                self.corruptions.insert(0, check)
                return None
            fault.detail = check + (f" ({detail})" if detail else "")
            fault.extra["check"] = check
        elif kind in ("auth-errors", "rate-limit"):
            fault.extra["marks"] = len(stamps(self._mark(name, "auth" if kind == "auth-errors" else "ratelimit")))
            line = ('binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'
                    if kind == "auth-errors" else "binance 429 Too Many Requests: rate limit exceeded, retrying")
            level = "ERROR" if kind == "auth-errors" else "WARNING"
            count = 3 if kind == "auth-errors" else 8
            stamp = time.strftime("%Y-%m-%d %H:%M:%S,000")
            lines = "".join(f"{stamp} {level} paperbot[{pid}] {line}\n" for _ in range(count))
            append_to(Path(bot["log_file"]), lines.encode())
            fault.detail = f"{count} lines"
        return fault

    def _kill_remediator_mid_restart(self, bot: str, since: float) -> bool:
        """SIGKILL of the remediator as soon as the bot's restart action is running (within 20 s)."""
        ledger = self.state / "remediator" / "ledger.sqlite3"
        deadline = time.monotonic() + 20
        running = False
        while time.monotonic() < deadline and not running:
            try:
                with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
                    running = bool(db.execute("SELECT 1 FROM actions WHERE bot = ? AND playbook = 'restart' AND "
                                              "state = 'running' AND started_at >= ?", (bot, since)).fetchone())
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        pid = service_pid(self.state / "stack.json", "remediator")
        if pid:
            _signal(pid, signal.SIGKILL)
        self.last[("remediator", "any")] = time.time()
        return running

    def _service_fault(self, kind: str) -> Fault | None:
        names = {"exporter-kill": ["exporter"], "prometheus-restart": ["prometheus", "prometheus-2"],
                 "alertmanager-kill": ["alertmanager", "alertmanager-2"]}[kind]
        names = [n for n in names if n in self.info]
        name = self.rng.choice(names)
        if name in self.open or time.time() - self.last.get((name, "any"), 0) < SERVICE_GAP:
            return None
        pid = service_pid(self.state / "stack.json", name)
        if not pid:
            return None
        _signal(pid, signal.SIGTERM if kind == "prometheus-restart" else signal.SIGKILL)
        return Fault(kind, name, time.time(), old_pid=pid)

    def _check_open(self) -> None:
        for target, fault in list(self.open.items()):
            if self._healed(fault):
                fault.healed = time.time()
                del self.open[target]
                self.last[(target, "any")] = fault.healed
                self.last[(target, "restart" if fault.kind in RESTARTING else fault.kind)] = fault.healed
            elif time.time() - fault.injected > HEAL_TIMEOUT and not fault.extra.get("late"):
                fault.extra["late"] = True
                print(f"[{time.strftime('%H:%M:%S')}] NOT HEALED in {HEAL_TIMEOUT:g}s: {fault.describe()}",
                      file=sys.stderr, flush=True)

    def _healed(self, fault: Fault) -> bool:
        if fault.kind in SERVICE_KINDS:
            return self._service_back(fault)
        bot = self.bots[fault.target]
        if fault.kind in ("auth-errors", "rate-limit"):
            marks = stamps(self._mark(fault.target, "auth" if fault.kind == "auth-errors" else "ratelimit"))
            return len(marks) > fault.extra["marks"]
        pid = self._pid(fault.target)
        answering = pid is not None and http_ok(self._health(fault.target), timeout=0.5) is not None
        if fault.kind in ("bot-kill", "bot-stop"):
            return answering and pid != fault.old_pid
        if fault.kind == "remediator-kill":
            return answering and pid != fault.old_pid and http_ok(self.info["remediator"] + "/-/healthy") is not None
        # store: restored since the fault, valid, answering; then its trades against the journal
        if not answering or not self._restored_since(fault.target, fault.injected):
            return False
        if fault.target == self.ft:
            if not open_database("freqtrade", bot["data_file"]).collect().valid:
                return False
            self._check_freqtrade(bot, fault.extra["closed"] or {})
        elif validate_file(bot["data_file"]).valid:
            self._check_trades(bot)
        else:
            return False
        return True

    def _restored_since(self, bot: str, since: float) -> bool:
        try:
            with sqlite3.connect(f"file:{self.state / 'remediator' / 'ledger.sqlite3'}?mode=ro", uri=True,
                                 timeout=1) as db:
                return bool(db.execute("SELECT 1 FROM actions WHERE bot = ? AND playbook = 'restore' AND "
                                       "outcome = 'success' AND finished_at >= ?", (bot, since)).fetchone())
        except sqlite3.Error:
            return False

    def _check_trades(self, bot: dict) -> None:
        """A restored file against the journal: every journal fill once (the newest may be in flight)."""
        journal = journal_ids(bot["journal"])
        ids = csv_ids(bot["data_file"])
        self.restores_checked += 1
        self.duplicated_at_restore += len(ids) - len(set(ids))
        self.lost_at_restore += len(set(journal[:-1]) - set(ids))

    def _check_freqtrade(self, bot: dict, before: dict[int, float]) -> None:
        """A restored Freqtrade database against what it held before the damage: every closed trade, with its
        profit, and none twice."""
        after = closed_trades(bot["data_file"]) or {}
        self.restores_checked += 1
        self.lost_at_restore += sum(1 for trade, profit in before.items()
                                    if trade not in after or abs(after[trade] - profit) > 1e-8)
        self.duplicated_at_restore += twice(bot["data_file"])

    def _service_back(self, fault: Fault) -> bool:
        url = self.info[fault.target]
        pid = service_pid(self.state / "stack.json", fault.target)
        if not pid or pid == fault.old_pid:
            return False
        if fault.target == "exporter":
            return http_ok(url + "/metrics", timeout=2) is not None
        if http_ok(url + "/-/ready") is None:
            return False
        if fault.kind == "alertmanager-kill" and self.ha:
            status = http_ok(url + "/api/v2/status")
            cluster = json.loads(status).get("cluster") or {} if status else {}
            return cluster.get("status") == "ready" and len(cluster.get("peers") or []) >= 2
        return True

    def score(self, exit_code: int | None) -> dict:
        return score(self, exit_code)


def _signal(pid: int | None, signum: int) -> None:
    if pid:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chaos.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", default="10m", help="how long faults are injected (then they get time to heal)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bots", type=int, default=6)
    p.add_argument("--gap", type=float, default=6.0, help="mean seconds between two faults")
    p.add_argument("--single", action="store_true", help="one Alertmanager and one Prometheus (default: HA pairs)")
    p.add_argument("--with-freqtrade", metavar="PATH", help="a real Freqtrade among the bots (`auto`: on PATH or in "
                   "./.venv-freqtrade), dry-run on the local exchange")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, ledger, files) afterwards")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="botwatch-chaos-"))
    freqtrade = find_freqtrade(args.with_freqtrade) if args.with_freqtrade else None
    soak = Soak(workdir, args.seed, parse_duration(args.duration), args.bots, args.gap, not args.single, freqtrade)
    exit_code = None
    try:
        soak.start()
        soak.run()
    finally:
        exit_code = soak.stop()
    result = soak.score(exit_code)
    result["workdir"] = str(workdir) if args.keep or not result["ok"] else None
    print(json.dumps(result), flush=True)
    if result["ok"] and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
