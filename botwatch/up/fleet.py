"""`botwatch up --fleet N`: many hosts on one machine, each a network namespace with its agent and two demo
paperbots, plus the central part: two remediator replicas on one PostgreSQL ledger, an Alertmanager pair
delivering to both, and two Prometheus servers finding the agents at the remediators' /sd.

The namespaces hang off one bridge with a 10.77.K.0/24 network that exists only inside this machine (no
default route, no NAT); cutting a host off is `ip link set` of its end of the veth pair. Needs root.

Every link that crosses that network is HTTPS, as between real hosts: a CA made at start (state/tls), a
certificate and a --web-config per listener (the remediators, each agent), basic auth for what Prometheus
reads there (/metrics, /sd), the agents and Alertmanager verifying against the CA.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from botwatch.up import alertmanager as am
from botwatch.up.certs import CA
from botwatch.core import mixin, scrape
from botwatch.core.files import write_atomic
from botwatch.core.serve import free_port
from botwatch.up.demo import demo_bots
from botwatch.up.standins.outbox import TelegramOutbox
from botwatch.up.postgres import PostgresCluster, PostgresError
from botwatch.up.stack import (TIMINGS, Stack, cluster_args, find_binary, secret_file, wait_cluster, supervise, alertmanager_config,
                            botwatch_argv, stack_config)

AGENT_PORT = mixin.CONFIG["ports"]["exporter"]     # an agent serves its host's metrics where the exporter would
BOTS_PER_HOST = 2
# the fleet's paces: `default` keeps the config model's job lease and deadline
FLEET_TIMINGS = {"fast": {"remediation": {"job_lease": "5s", "job_deadline": "30s"}, "sd_refresh": "2s"},
                 "default": {"remediation": {}, "sd_refresh": "30s"}}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


class Network:
    """A bridge (the 'switch' every host is plugged into) and the hosts' namespaces."""

    def __init__(self, tag: str, subnet: int):
        self.tag, self.subnet = tag, subnet
        self.bridge = f"bw{tag}"
        self.gateway = f"10.77.{subnet}.1"

    @classmethod
    def new(cls) -> "Network":
        pid = os.getpid()
        return cls(str(pid % 100000), 1 + pid % 250)

    def namespace(self, index: int) -> str:
        return f"bw{self.tag}-h{index}"

    def link(self, index: int) -> str:
        return f"vh{self.tag}x{index}"

    def address(self, index: int) -> str:
        return f"10.77.{self.subnet}.{10 + index}"

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, index: int) -> str:
        """A namespace plugged into the bridge; its address."""
        ns, link, inner = self.namespace(index), self.link(index), f"vn{self.tag}x{index}"
        _ip("netns", "add", ns)
        _ip("link", "add", link, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "set", link, "master", self.bridge)
        _ip("link", "set", link, "up")
        return self.address(index)

    def run_in(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(index)]

    def cut(self, index: int) -> None:
        _ip("link", "set", self.link(index), "down")

    def mend(self, index: int) -> None:
        _ip("link", "set", self.link(index), "up")

    def remove(self, hosts: int) -> None:
        for index in range(1, hosts + 1):
            _ip("netns", "del", self.namespace(index), check=False)
            _ip("link", "del", self.link(index), check=False)
        _ip("link", "del", self.bridge, check=False)

    def describe(self) -> dict:
        return {"tag": self.tag, "subnet": self.subnet, "bridge": self.bridge, "gateway": self.gateway}


class FleetTLS:
    """The fleet's CA, a certificate and web config per listener on the hosts' network, and the basic-auth
    user Prometheus reads /metrics and /sd as (its password in secrets/, only its bcrypt hash in web configs)."""

    USER = "prometheus"

    def __init__(self, state: Path):
        from botwatch.remediator.web.login import hash_password
        self.folder = state / "tls"
        self.ca = CA.create(self.folder, "botwatch fleet CA")
        self.password_file = secret_file(state / "secrets" / "prometheus_password", secrets.token_urlsafe(16))
        self._users = {self.USER: hash_password(self.password_file.read_text().strip(), rounds=10)}

    def web_config(self, name: str, addresses: list[str]) -> Path:
        issued = self.ca.issue(name, addresses)
        path = self.folder / f"{name}-web.yml"
        write_atomic(path, yaml.safe_dump({"tls_server_config": {"cert_file": str(issued.cert),
                                                                 "key_file": str(issued.key)},
                                           "basic_auth_users": self._users}, sort_keys=False), private=True)
        return path

    def client(self) -> dict:
        """How Prometheus calls an https listener of the fleet (a scrape config's or http_sd_config's keys)."""
        return {"scheme": "https", "tls_config": {"ca_file": str(self.ca.cert)},
                "basic_auth": {"username": self.USER, "password_file": str(self.password_file)}}


def host_bots(state: Path, host: str, timings: str) -> list[dict]:
    """Two demo paperbots for one host, named after it."""
    bots = demo_bots(state / "hosts" / host, TIMINGS[timings], botwatch_argv())[:BOTS_PER_HOST]
    for j, bot in enumerate(bots, 1):
        old = bot["name"]
        bot["name"], bot["host"] = f"{host}-bot-{j}", host
        bot["start_command"] = [arg.replace(old, bot["name"]) if old in arg else arg for arg in bot["start_command"]]
        for key in ("data_file", "journal", "pidfile", "log_file"):
            bot[key] = bot[key].replace(old, bot["name"])
    return bots


def prometheus_config(ports: dict[str, int], gateway: str, timings: str, rules: Path, replica: str,
                      tls: FleetTLS) -> str:
    """One of the pair: agents found at its own remediator replica's /sd; both peers and replicas listed;
    the agents, the replicas and /sd read over HTTPS with basic auth."""
    own = "remediator" if replica == "a" else "remediator-2"
    targets = {"remediator": [f"{gateway}:{ports[name]}" for name in ("remediator", "remediator-2")],
               "alertmanager": [f"127.0.0.1:{ports[name]}" for name in ("alertmanager", "alertmanager-2")],
               "prometheus": [f"127.0.0.1:{ports[name]}" for name in ("prometheus", "prometheus-2")]}
    doc = scrape.prometheus_config(targets, [str(rules)], TIMINGS[timings]["rules"], replica=replica,
                                   agents_sd=f"https://{gateway}:{ports[own]}/sd",
                                   sd_refresh=FLEET_TIMINGS[timings]["sd_refresh"],
                                   clients={"agents": tls.client(), "remediator": tls.client()})
    return scrape.render(doc, "# written by `botwatch up --fleet`\n")


def fleet_alertmanager_config(config, urls: dict[str, str], token: Path, timings: str, ca_file: Path) -> str:
    """The shipped routes, the remediator receiver sending to both replicas (each decides once, together),
    their certificates checked against the fleet's CA."""
    doc = yaml.safe_load(alertmanager_config(config, urls["remediator"], token, timings, ca_file))
    for receiver in doc["receivers"]:
        if receiver["name"] == "remediator":
            first = receiver["webhook_configs"][0]
            receiver["webhook_configs"].append({**first, "url": urls["remediator-2"] + "/alerts"})
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def issue_agent_tokens(ledger_url: str, hosts: list[str], folder: Path, now: float) -> dict[str, Path]:
    """A token per host's agent (as `botwatch agent-token HOST` issues it), each in its own file."""
    from botwatch.remediator import agent_tokens
    from botwatch.remediator.ledger import Ledger
    ledger = Ledger(ledger_url)
    try:
        return {host: secret_file(folder / f"agent-{host}", agent_tokens.issue(ledger, host, now)) for host in hosts}
    finally:
        ledger.close()


def start_agent(stack: Stack, network: Network, index: int, host: str, config_file: Path, token: Path,
                remediators: list[str], tls: FleetTLS) -> str:
    address = f"{network.address(index)}:{AGENT_PORT}"
    argv = network.run_in(index) + botwatch_argv() + [
        "agent", "--config", str(config_file), "--host", host, "--listen", address, "--token-file", str(token),
        "--state-dir", str(stack.state / "hosts" / host / "agent"), "--ca-file", str(tls.ca.cert),
        "--web-config", str(tls.web_config(f"agent-{host}", [network.address(index)]))]
    for url in remediators:
        argv += ["--remediator", url]
    stack.service(f"agent-{host}", argv, f"https://{address}/-/healthy")
    return f"https://{address}"


def up_fleet(hosts: int, timings: str, state_dir: str) -> int:
    if os.geteuid() != 0:
        print("botwatch up --fleet: needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 1 <= hosts <= 200:
        print("botwatch up --fleet: between 1 and 200 hosts", file=sys.stderr)
        return 2
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    stop = {"asked": False}
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(asked=True))
    stack, outbox, network = Stack(state), TelegramOutbox(state / "telegram-outbox.jsonl"), Network.new()
    # the cluster's folder must be the postgres user's to enter: a temp folder, not the (maybe private) state dir
    postgres, config = PostgresCluster(), None
    names = [f"host-{i}" for i in range(1, hosts + 1)]
    try:
        network.create()
        postgres.start()
        ledger = postgres.create_database("botwatch")
        ports = {name: free_port() for name in ("remediator", "remediator-2", "prometheus", "prometheus-2",
                                                "alertmanager", "alertmanager-2", "cluster-alertmanager",
                                                "cluster-alertmanager-2")}
        urls = {name: f"https://{network.gateway}:{port}" if name.startswith("remediator") else f"http://127.0.0.1:{port}"
                for name, port in ports.items() if not name.startswith("cluster-")}
        tls = FleetTLS(state)
        stack.ca_file = tls.ca.cert
        remediator_web = tls.web_config("remediator", [network.gateway])
        raw = {"bots": [bot for host in names for bot in host_bots(state, host, timings)],
               "remediation": dict(FLEET_TIMINGS[timings]["remediation"],
                                   alertmanager_urls=[urls["alertmanager"], urls["alertmanager-2"]])}
        config = stack_config(raw, state, timings, urls["prometheus"], outbox)
        files = {"config": state / "bots.yaml", "token": state / "secrets" / "webhook_token",
                 "rules": state / "prometheus" / "rules" / "botwatch.rules.yml"}
        write_atomic(files["config"], "# written by `botwatch up --fleet`\n" + yaml.safe_dump(
            config.model_dump(mode="json", exclude_none=True, exclude={"path"}), sort_keys=False))
        secret_file(files["token"], secrets.token_urlsafe(32))
        write_atomic(files["rules"], mixin.render(dict(TIMINGS[timings]["rules"],
                                                       runbook_url=urls["remediator"] + "/runbook")))
        for name in ("remediator", "remediator-2"):
            stack.service(name, botwatch_argv() + ["remediator", "--config", str(files["config"]), "--listen",
                                                   f"{network.gateway}:{ports[name]}", "--token-file",
                                                   str(files["token"]), "--ledger", ledger,
                                                   "--web-config", str(remediator_web)],
                          urls[name] + "/-/healthy", env={"BOTWATCH_DATA_DIR": str(state / name)})
        am_file = state / "alertmanager" / "alertmanager.yml"
        am.write(am_file, fleet_alertmanager_config(config, urls, files["token"], timings, tls.ca.cert))
        peers = ["alertmanager", "alertmanager-2"]
        for name in peers:
            stack.service(name, [find_binary("prometheus-alertmanager", "alertmanager"), f"--config.file={am_file}",
                                 f"--storage.path={state / name / 'data'}", f"--web.listen-address=127.0.0.1:{ports[name]}",
                                 *cluster_args(name, peers, ports, timings)], urls[name] + "/-/ready")
        for name in ("alertmanager", "alertmanager-2"):
            wait_cluster(urls[name], 2)
        for name, replica in (("prometheus", "a"), ("prometheus-2", "b")):
            path = state / name / "prometheus.yml"
            write_atomic(path, prometheus_config(ports, network.gateway, timings, files["rules"], replica, tls))
            stack.service(name, [find_binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={state / name / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{ports[name]}", "--web.enable-lifecycle"],
                          urls[name] + "/-/ready")
        remediators = [urls["remediator"], urls["remediator-2"]]
        agent_tokens = issue_agent_tokens(ledger, names, state / "secrets", time.time())
        described = {}
        for index, host in enumerate(names, 1):
            network.add_host(index)
            for bot in config.bots:
                if bot.host == host:
                    stack.spawn(f"bot-{bot.name}", network.run_in(index) + bot.start_command, detach=True)
            described[host] = {"namespace": network.namespace(index), "index": index, "link": network.link(index),
                               "agent": start_agent(stack, network, index, host, files["config"],
                                                    agent_tokens[host], remediators, tls),
                               "token_file": str(agent_tokens[host])}
        stack.urls = urls
        path = stack.write_state(config, outbox.path)
        doc = json.loads(path.read_text())
        doc.update(hosts=described, network=network.describe(), ledger=ledger, token_file=str(files["token"]),
                   remediators=remediators, ca_file=str(tls.ca.cert),
                   basic_auth={"username": tls.USER, "password_file": str(tls.password_file)})
        write_atomic(path, json.dumps(doc, indent=2) + "\n")
        print(f"botwatch fleet is up: {hosts} hosts, {len(config.bots)} bots, {timings} timings, state in {state}")
        for name in ("prometheus", "prometheus-2", "alertmanager", "alertmanager-2", "remediator", "remediator-2"):
            print(f"  {name:<14} {urls[name]}")
        print(f"  ledger         {ledger}\n  stack.json     {path}\nCtrl-C stops everything.", flush=True)
        supervise(stack, stop)
        return 0
    except (RuntimeError, OSError, PostgresError) as err:
        print(f"botwatch up --fleet: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop(config)
        outbox.close()
        network.remove(hosts)
        postgres.remove()
        print("botwatch stopped", flush=True)
