"""`botwatch up`: the whole stack on loopback until Ctrl-C or SIGTERM.

The demo paperbots (or your bots, with --config), the exporter, the remediator, Prometheus with the
project's rules and Alertmanager with its routes (the webhook token and the Telegram token rendered in
at start). Without a Telegram token, a local stand-in of the Bot API writes every message to
`STATE/telegram-outbox.jsonl`. `STATE/stack.json` (README, "Commands") says where everything is.

Bots are started in their own sessions so that they outlive a restart of any monitor; on stop, every
process the stack started, and every bot named by a pidfile of the config, is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from botwatch.up import alertmanager as am
from botwatch.core import mixin, scrape
from botwatch.core.config import PROCESS, Config, ConfigError, config_from_mapping, load_config
from botwatch.core.files import write_atomic
from botwatch.core.liveness import ProcessCmdlineProbe, process_alive
from botwatch.core.serve import free_port, free_ports
from botwatch.core.units import parse_duration
from botwatch.remediator.web.login import hash_password
from botwatch.up.demo import FreqtradeNotFound, demo_bots, find_freqtrade, freqtrade_bot
from botwatch.up.standins.localexchange import LocalExchange
from botwatch.up.standins.outbox import TelegramOutbox

log = logging.getLogger("botwatch.up")

# The stack's two paces. `default` is botwatch's own defaults (the mixin's rules and scrape interval, the
# config model's remediation waits); `fast` shortens them for demos and the end-to-end tests. The demo
# bots check as often as Prometheus scrapes.
TIMINGS = {
    "fast": {"rules": mixin.FAST, "trade_interval": 1.0, "stale_after": "30s", "peer_timeout": "2s",
             "remediation": {"verify_after": "2s", "verify_within": "30s", "backoff": ["10s", "30s", "60s"],
                             "healthy_reset_after": "2m"},
             "alertmanager": {"group_wait": "1s", "group_interval": "5s", "remediator_repeat": "10s"}},
    "default": {"rules": mixin.CONFIG, "trade_interval": 5.0, "stale_after": "5m", "peer_timeout": "15s",
                "remediation": {}, "alertmanager": None},
}
for _t in TIMINGS.values():
    _t["scrape"] = _t["rules"]["scrape_interval"]
    _t["check_interval"] = parse_duration(_t["scrape"])
DEFAULT_PORTS = dict(mixin.CONFIG["ports"])
BOT_PIDFILE_GRACE = 2.0     # seconds a bot started just before the stop takes to write its pidfile
CRASH_LOOP, CRASH_WINDOW = 5, 60.0    # a service restarted more often than this stops the stack
HA_PORTS = {"prometheus-2": 9091, "alertmanager-2": 9095, "cluster-alertmanager": 9094, "cluster-alertmanager-2": 9096}
OUTBOX_TOKEN = "0:botwatch-local-outbox"
PAGE_USER = "admin"        # the status page's user when the config names none
SETPRIV = shutil.which("setpriv")      # util-linux, on every Debian


def botwatch_argv() -> list[str]:
    return [sys.executable, "-m", "botwatch"]


def secret_file(path: Path, value: str) -> Path:
    write_atomic(path, value + "\n", private=True)
    return path


def stack_config(raw: dict, state: Path, timings: str, prometheus_url: str, outbox: TelegramOutbox) -> Config:
    """The config the stack runs: yours (or the demo's), with the stack's timings, report and Telegram."""
    t = TIMINGS[timings]
    raw = dict(raw)
    remediation = dict(raw.get("remediation") or {})
    for key, value in t["remediation"].items():     # the pace's waits, unless the config sets its own
        remediation.setdefault(key, value)
    raw["remediation"] = remediation
    raw["report"] = {**(raw.get("report") or {}), "prometheus_url": prometheus_url}
    telegram = dict(raw.get("telegram") or {})
    if not telegram.get("bot_token_file"):
        telegram = {"bot_token_file": str(secret_file(state / "secrets" / "telegram_token", OUTBOX_TOKEN)),
                    "chat_id": telegram.get("chat_id") or 1, "api_url": outbox.url}
    raw["telegram"] = telegram
    raw.setdefault("backup", {"dir": str(state / "backups")})
    page = dict(raw.get("status_page") or {})
    if not page.get("users"):       # someone must be able to log in to the demo's status page
        page["users"] = [{"name": PAGE_USER, "password_hash": hash_password(page_password(state))}]
    raw["status_page"] = page
    return config_from_mapping(raw, "botwatch up", base=state)


def page_password(state: Path) -> str:
    """The password of the status page's `admin` for a config that names no user: kept in the state dir (the
    same across restarts of the stack), made at the first start."""
    path = state / "secrets" / "status_page_password"
    if not path.exists():
        secret_file(path, secrets.token_urlsafe(12))
    return path.read_text().strip()


def prometheus_config(ports: dict[str, int], timings: str, rules: Path, replica: str | None = None) -> str:
    """Prometheus' config; with `replica` (HA), every Alertmanager peer and Prometheus server listed."""
    targets = {part: [f"127.0.0.1:{ports[name]}" for name in ports if name == part or name.startswith(part + "-")]
               for part in ("exporter", "remediator", "alertmanager", "prometheus")}
    doc = scrape.prometheus_config(targets, [str(rules)], TIMINGS[timings]["rules"], replica=replica)
    return scrape.render(doc, "# written by `botwatch up`\n")


def alertmanager_config(config: Config, remediator_url: str, token_file: Path, timings: str,
                        ca_file: Path | None = None) -> str:
    return paced_routes(am.render(config, remediator_url, token_file, ca_file=ca_file), timings)


def paced_routes(text: str, timings: str) -> str:
    """Alertmanager's config `text` with the routes' waits of the pace (`fast`: a demo's); unchanged at default."""
    t = TIMINGS[timings]["alertmanager"]
    if not t:
        return text
    doc = yaml.safe_load(text)

    def faster(route: dict) -> None:   # the same tree, with the waits of a demo
        if route.get("group_wait") not in (None, "0s"):
            route["group_wait"] = t["group_wait"]
        if "group_interval" in route:
            route["group_interval"] = t["group_interval"]
        if route.get("receiver") == "remediator" and "repeat_interval" in route:
            route["repeat_interval"] = t["remediator_repeat"]
        for child in route.get("routes", []):
            faster(child)

    faster(doc["route"])
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@dataclass
class Stack:
    state: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    services: dict[str, tuple[list[str], dict | None]] = field(default_factory=dict)   # name -> how to (re)start
    restarts: dict[str, list[float]] = field(default_factory=dict)                          # name -> when
    ca_file: Path | None = None          # the CA its https services' certificates are checked against

    def spawn(self, name: str, argv: list[str], detach: bool = False, env: dict | None = None) -> subprocess.Popen:
        logs = self.state / "logs"
        logs.mkdir(exist_ok=True)
        if SETPRIV:   # if `botwatch up` itself is killed with SIGKILL, what it started still gets SIGTERM
            argv = [SETPRIV, "--pdeathsig", "TERM", "--", *argv]
        with open(logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=detach,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.processes[name] = process
        return process

    def start_bots(self, config: Config) -> None:
        for bot in config.bots:
            if bot.start_command and bot.runtime == PROCESS and not running_pid(bot.pidfile):
                self.spawn(f"bot-{bot.name}", bot.start_command, detach=True)

    def service(self, name: str, argv: list[str], ready: str, env: dict | None = None) -> None:
        self.services[name] = (argv, env)
        process = self.spawn(name, argv, env=env)
        _wait_http(ready, name, process, ca_file=self.ca_file)

    def revive(self, name: str, now: float) -> bool:
        """Start a service that exited again, as a supervisor would; False when it keeps dying
        (CRASH_LOOP exits within CRASH_WINDOW seconds): then the stack stops."""
        recent = [t for t in self.restarts.get(name, []) if now - t < CRASH_WINDOW] + [now]
        self.restarts[name] = recent
        if len(recent) > CRASH_LOOP:
            return False
        argv, env = self.services[name]
        self.spawn(name, argv, env=env)      # not waited for: a stop asked meanwhile is noticed at once
        return True

    def write_state(self, config: Config, outbox: Path) -> Path:
        bots = {bot.name: {"health": bot.health_endpoint, "pidfile": str(bot.pidfile or ""),
                           "data_file": str(bot.data_file), "journal": str(bot.journal or ""),
                           "log_file": str(bot.log_file or "")} for bot in config.bots}
        path = self.state / "stack.json"
        password = self.state / "secrets" / "status_page_password"
        write_atomic(path, json.dumps({**self.urls, "telegram_outbox": str(outbox),
                                       **({"status_page_password": str(password)} if password.exists() else {}),
                                       "config": str(self.state / "bots.yaml"), "bots": bots}, indent=2) + "\n")
        return path

    def stop(self, config: Config | None) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
        for pid in self._our_bots(config):      # bots the remediator restarted are ours too
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # a bot the remediator started in its last moments writes its pidfile a little later: look again
        settle = time.monotonic() + BOT_PIDFILE_GRACE
        while True:
            for pid in self._our_bots(config):
                _kill(pid, signal.SIGKILL)
            if time.monotonic() >= settle:
                break
            time.sleep(0.1)

    def _our_bots(self, config: Config | None) -> list[int]:
        """Live bots of the config known by a pidfile, or by a process_cmdline naming the state dir (the demo
        Freqtrade); a user's bot known only by its name is not the stack's to stop."""
        pids = []
        for bot in (config.bots if config else []):
            if bot.pidfile:
                pids.append(running_pid(bot.pidfile))
            elif bot.process_cmdline and re.escape(str(self.state)) in bot.process_cmdline:
                pids.append(ProcessCmdlineProbe(bot.process_cmdline)().pid)
        return [pid for pid in pids if pid]


def service_pid(stack_json: Path, name: str) -> int | None:
    """The pid of a running stack's service (`botwatch …`, Prometheus, Alertmanager) found by its listen
    address in stack.json (`--listen 127.0.0.1:P` or `--web.listen-address=127.0.0.1:P`, setpriv wrappers
    aside): for tests and the chaos soak, which kill services on purpose."""
    address = json.loads(Path(stack_json).read_text())[name].removeprefix("http://").encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = (Path("/proc") / entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"setpriv" not in argv[0] and any(arg == address or arg.endswith(b"=" + address) for arg in argv):
                return int(entry)
    return None


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def running_pid(pidfile: str | Path | None) -> int | None:
    """The pid in a pidfile if that process runs (a zombie does not)."""
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (TypeError, ValueError, OSError):
        return None
    return pid if process_alive(pid) else None


def _wait_http(url: str, what: str, process: subprocess.Popen, timeout: float = 60,
               ca_file: Path | None = None) -> None:
    import ssl
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file and url.startswith("https:") else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}; see logs/{what}.log in the state dir")
        try:
            urllib.request.urlopen(url, timeout=2, context=context).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:g}s")


def find_binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{names[0]} is not installed: `make run` installs Debian's prometheus packages")


def write_files(stack: Stack, config: Config, ports: dict[str, int], urls: dict[str, str], timings: str) -> dict:
    """The stack's config, secrets, rules and service configs in the state dir; their paths."""
    state = stack.state
    files = {"config": state / "bots.yaml", "token": state / "secrets" / "webhook_token",
             "rules": state / "prometheus" / "rules" / "botwatch.rules.yml",
             "prometheus": state / "prometheus" / "prometheus.yml",
             "alertmanager": state / "alertmanager" / "alertmanager.yml"}
    # pauses become silences in the stack's own Alertmanager (either peer of an HA pair)
    peers = [urls[name] for name in ports if name.startswith("alertmanager")]
    config = config.model_copy(update={"remediation": config.remediation.model_copy(
        update={"alertmanager_urls": peers})})
    write_atomic(files["config"], "# written by `botwatch up`\n" + yaml.safe_dump(
        config.model_dump(mode="json", exclude_none=True, exclude={"path"}), sort_keys=False))
    secret_file(files["token"], secrets.token_urlsafe(32))
    write_atomic(files["rules"], mixin.render(dict(TIMINGS[timings]["rules"], runbook_url=urls["remediator"] + "/runbook")))
    ha = "prometheus-2" in ports
    write_atomic(files["prometheus"], prometheus_config(ports, timings, files["rules"], "a" if ha else None))
    if ha:
        files["prometheus-2"] = state / "prometheus-2" / "prometheus.yml"
        write_atomic(files["prometheus-2"], prometheus_config(ports, timings, files["rules"], "b"))
    am.write(files["alertmanager"], alertmanager_config(config, urls["remediator"], files["token"], timings))
    return files


def start_services(stack: Stack, files: dict, ports: dict[str, int], urls: dict[str, str], timings: str) -> None:
    """The exporter, the remediator, Alertmanager and Prometheus, each waited for until it answers."""
    state, config = stack.state, str(files["config"])
    stack.service("exporter", botwatch_argv() + ["exporter", "--config", config,
                                                 "--listen", f"127.0.0.1:{ports['exporter']}",
                                                 "--state-dir", str(state / "exporter"),
                                                 "--remediator", urls["remediator"], "--token-file", str(files["token"])],
                  urls["exporter"] + "/metrics")
    stack.service("remediator", botwatch_argv() + ["remediator", "--config", config, "--listen",
                                                   f"127.0.0.1:{ports['remediator']}", "--token-file", str(files["token"])],
                  urls["remediator"] + "/-/healthy", env={"BOTWATCH_DATA_DIR": str(state / "remediator")})
    peers = [name for name in ports if name.startswith("alertmanager")]
    for name in peers:          # one, or an HA pair gossiping on 127.0.0.1
        cluster = cluster_args(name, peers, ports, timings) if len(peers) > 1 else ["--cluster.listen-address="]
        stack.service(name, [find_binary("prometheus-alertmanager", "alertmanager"), f"--config.file={files['alertmanager']}",
                             f"--storage.path={state / name / 'data'}",
                             f"--web.listen-address=127.0.0.1:{ports[name]}", *cluster], urls[name] + "/-/ready")
    if len(peers) > 1:
        for name in peers:
            wait_cluster(urls[name], len(peers))
    for name in (n for n in ports if n.startswith("prometheus")):
        stack.service(name, [find_binary("prometheus"), f"--config.file={files[name]}",
                             f"--storage.tsdb.path={state / name / 'data'}",
                             f"--web.listen-address=127.0.0.1:{ports[name]}",
                             "--web.enable-lifecycle"], urls[name] + "/-/ready")


def cluster_args(name: str, peers: list[str], ports: dict[str, int], timings: str) -> list[str]:
    """An Alertmanager peer's cluster flags. Its peer timeout stays below every group_interval: peer N waits
    N × peer timeout before it sends, and then sends the group's state as it was when the wait began; a
    wait longer than a group_interval sends a state older than what the first peer already sent (a FIRING
    after the RESOLVED, a host listed after it came back)."""
    return [f"--cluster.listen-address=127.0.0.1:{ports['cluster-' + name]}",
            *[f"--cluster.peer=127.0.0.1:{ports['cluster-' + other]}" for other in peers if other != name],
            f"--cluster.peer-timeout={TIMINGS[timings]['peer_timeout']}"]


def wait_cluster(url: str, size: int, timeout: float = 60) -> None:
    """Until this Alertmanager peer reports its cluster ready with every peer in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/v2/status", timeout=2) as response:
                cluster = json.load(response).get("cluster") or {}
            if cluster.get("status") == "ready" and len(cluster.get("peers") or []) >= size:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Alertmanager cluster at {url} was not ready with {size} peers within {timeout:g}s")


def up(config_file: str | None, timings: str, state_dir: str, with_freqtrade: str | None = None,
       ha: bool = False) -> int:
    """Run the stack until SIGTERM or Ctrl-C; 2 for a mistake in the config or the state dir. With `ha`, two
    Alertmanager peers in a cluster and two Prometheus servers, each sending to both peers."""
    state = Path(state_dir).resolve()
    try:
        state.mkdir(parents=True, exist_ok=True)
        raw = (load_config(config_file).model_dump(mode="json", exclude_unset=True, exclude_none=True,
                                                   exclude={"path"})
               if config_file else {"bots": demo_bots(state, TIMINGS[timings], botwatch_argv())})
        freqtrade = find_freqtrade(with_freqtrade) if with_freqtrade else None
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    except FreqtradeNotFound as err:
        print(f"botwatch up: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"botwatch up: --state-dir {state}: {err.strerror}", file=sys.stderr)
        return 2
    stop = {"asked": False}   # a plain flag: a signal handler must not take locks (Event.set() does)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(asked=True))
    stack, outbox, config = Stack(state), TelegramOutbox(state / "telegram-outbox.jsonl"), None
    exchange = LocalExchange() if freqtrade else None
    try:
        wanted = dict(DEFAULT_PORTS, **(HA_PORTS if ha else {}))
        ports = free_ports({name: preferred if timings == "default" else None for name, preferred in wanted.items()})
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if not name.startswith("cluster-")}
        if exchange is not None:
            raw = dict(raw, bots=list(raw["bots"]) + [freqtrade_bot(state, freqtrade, exchange.url, free_port())])
        config = stack_config(raw, state, timings, urls["prometheus"], outbox)
        files = write_files(stack, config, ports, urls, timings)
        stack.start_bots(config)
        start_services(stack, files, ports, urls, timings)
        stack.urls = urls
        _announce(stack.write_state(config, outbox.path), config, urls, timings, outbox)
        supervise(stack, stop)
        return 0
    except (RuntimeError, OSError) as err:
        print(f"botwatch up: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop(config)
        outbox.close()
        if exchange is not None:
            exchange.close()
        print("botwatch stopped", flush=True)


def _announce(path: Path, config: Config, urls: dict[str, str], timings: str, outbox: TelegramOutbox) -> None:
    print(f"botwatch is up: {len(config.bots)} bots, {timings} timings, state in {path.parent}")
    for name in ("prometheus", "prometheus-2", "alertmanager", "alertmanager-2", "exporter", "remediator"):
        if name in urls:
            print(f"  {name:<14} {urls[name]}")
    if any(user.name == PAGE_USER for user in config.status_page.users):
        print(f"  status page   {urls['remediator']}/  (log in as {PAGE_USER}, the password is in "
              f"{path.parent / 'secrets' / 'status_page_password'})")
    print(f"  telegram      {config.telegram.api_url if config.telegram.api_url != outbox.url else outbox.path}")
    print(f"  stack.json    {path}\nCtrl-C stops everything.", flush=True)


def supervise(stack: Stack, stop: dict) -> None:
    """Until a stop is asked for. Bots may come and go (the remediator restarts them); a service that exits
    is started again, as systemd or docker's restart policy would (its log says why it exited), unless it
    keeps dying. In an HA stack the other of a pair carries on meanwhile."""
    while not stop["asked"]:
        time.sleep(0.05)   # notice a stop at once: whoever sent SIGTERM may not wait long
        for name, process in list(stack.processes.items()):
            exited = process.poll() is not None      # polling reaps it: a killed bot leaves no zombie behind
            if name.startswith("bot-"):
                if exited:                           # the remediator starts it again, as its own child
                    del stack.processes[name]
                continue
            if not exited or stop["asked"]:
                continue
            print(f"{name} exited with status {process.returncode}; starting it again "
                  f"(see {stack.state}/logs/{name}.log)", file=sys.stderr, flush=True)
            if not stack.revive(name, time.monotonic()):
                print(f"{name} keeps exiting; stopping", file=sys.stderr, flush=True)
                stop["asked"] = True
                return
