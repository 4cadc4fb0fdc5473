"""`botwatch up --fleet 3 --timings fast`: three hosts as network namespaces, two remediators on PostgreSQL,
an Alertmanager pair, two Prometheus servers finding the agents at /sd. Real everything; needs root."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg
import pytest
import yaml

from botwatch.up.certs import CA
from botwatch.up.fleet import Network
from botwatch.up.stack import running_pid
from tests.conftest import BOTWATCH, ROOT, free_port, http_get, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]


class FleetStack:
    def __init__(self, state):
        self.state = state
        self.doc = json.loads((state / "stack.json").read_text())
        self.tls = ssl.create_default_context(cafile=self.doc["ca_file"])
        auth = self.doc["basic_auth"]
        password = open(auth["password_file"]).read().strip()
        self.basic = "Basic " + base64.b64encode(f"{auth['username']}:{password}".encode()).decode()

    def fetch(self, url: str, context=None, auth: bool = True) -> tuple[int, bytes]:
        """GET an https listener of the fleet: its status and body (checked against the fleet's CA, with
        Prometheus' basic auth unless `auth` is False)."""
        request = urllib.request.Request(url, headers={"Authorization": self.basic} if auth else {})
        try:
            with urllib.request.urlopen(request, timeout=5, context=context or self.tls) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def query(self, expr: str, server: str = "prometheus") -> list[dict]:
        url = f"{self.doc[server]}/api/v1/query?query={urllib.parse.quote(expr)}"
        return json.loads(http_get(url))["data"]["result"]

    def jobs(self, where: str = "TRUE", args=()) -> list[dict]:
        with psycopg.connect(self.doc["ledger"], row_factory=psycopg.rows.dict_row) as db:
            return db.execute(f"SELECT * FROM actions WHERE ({where}) AND playbook <> 'backup' ORDER BY id",
                              args).fetchall()

    def deliveries(self, bot: str) -> list[dict]:
        with psycopg.connect(self.doc["ledger"], row_factory=psycopg.rows.dict_row) as db:
            return db.execute("SELECT * FROM deliveries WHERE bot = %s ORDER BY id", (bot,)).fetchall()

    def pid(self, bot: str) -> int | None:
        return running_pid(self.doc["bots"][bot]["pidfile"])

    def telegram(self) -> list[str]:
        path = self.state / "telegram-outbox.jsonl"
        return [json.loads(line).get("text", "") for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def fleet_stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("fleet")
    log = open(state.parent / "fleet-up.log", "wb")
    process = subprocess.Popen(BOTWATCH + ["up", "--fleet", "3", "--timings", "fast", "--state-dir", str(state)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (state / "stack.json").exists() and "hosts" in json.loads((state / "stack.json").read_text()),
                 timeout=120, what="the fleet up")
        stack = FleetStack(state)
        wait_for(lambda: len(stack.query('up{job="botwatch-agents"} == 1')) == 3, timeout=60,
                 what="three agents scraped")
        wait_for(lambda: len(stack.query("tradingbot_up == 1")) == 6, timeout=60, what="six bots up")
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, (state.parent / "fleet-up.log").read_text()[-2000:]


def test_a_bot_killed_on_host_2_is_restarted_there_once(fleet_stack):
    bot = "host-2-bot-1"
    before = fleet_stack.pid(bot)
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: fleet_stack.pid(bot) not in (None, before), timeout=60, what=f"{bot} restarted")
    wait_for(lambda: fleet_stack.jobs("bot = %s AND state = 'done'", (bot,)), what="the job recorded")
    time.sleep(8)                      # the other peer's copies and resends arrive meanwhile
    [job] = fleet_stack.jobs("bot = %s", (bot,))
    assert (job["playbook"], job["outcome"], job["host"]) == ("restart", "success", "host-2")
    assert job["worker"].startswith("host-2/")
    # the agent saw the death (pidfd) and told a replica: that acted; a copy of TradingBotDown, should
    # Prometheus have seen the bot down, is the same incident's duplicate
    notes = [(d["status"], d["note"]) for d in fleet_stack.deliveries(bot)]
    assert [n for n in notes if n[1] == "scheduled restart"] == [("death", "scheduled restart")], notes
    assert all(note == "duplicate: already acted on" for status, note in notes if status == "firing"), notes


def test_what_crosses_the_hosts_network_is_https_and_asks_for_a_credential(fleet_stack):
    doc = fleet_stack.doc
    sd, agent = doc["remediator"] + "/sd", doc["hosts"]["host-1"]["agent"]
    # Prometheus scrapes the agents and both replicas over HTTPS (the fleet's CA, basic auth), finding the
    # agents at /sd over HTTPS too (three agents found is that)
    targets = json.loads(http_get(doc["prometheus"] + "/api/v1/targets"))["data"]["activeTargets"]
    crossing = [t for t in targets if t["labels"]["job"] in ("botwatch-agents", "botwatch-remediator")]
    assert len(crossing) == 5, crossing
    assert all(t["scrapeUrl"].startswith("https://10.77.") and t["health"] == "up" for t in crossing), crossing
    # a client without the fleet's CA is refused at the handshake, before any request is sent
    for url in (sd, agent + "/metrics"):
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            fleet_stack.fetch(url, context=ssl.create_default_context())
    # with the CA but no credential: 401 and nothing of what is behind
    for url in (sd, doc["remediator-2"] + "/metrics", agent + "/metrics"):
        status, body = fleet_stack.fetch(url, auth=False)
        assert status == 401 and b"10.77." not in body and b"tradingbot_" not in body, (url, status, body[:200])
    # plain HTTP to a TLS listener: no answer of use (so a token sent that way is never taken)
    for url in (sd, agent + "/metrics", doc["remediator"] + "/agent/poll"):
        try:
            with urllib.request.urlopen(url.replace("https://", "http://"), timeout=5) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
        except (urllib.error.URLError, ConnectionError) as err:
            status, body = None, str(err).encode()
        assert status != 200 and b"10.77." not in body and b"tradingbot_" not in body, (url, status, body[:200])
    # Alertmanager's webhook reaches the replicas over HTTPS: an alert with a playbook label (none this bot
    # has; nothing is done) is delivered and noted
    bot = "host-1-bot-2"
    pid = fleet_stack.pid(bot)
    alert = {"labels": {"alertname": "BotwatchTlsProbe", "playbook": "none", "severity": "remediate", "bot": bot,
                        "host": "host-1"}, "annotations": {"summary": "a test alert sent through Alertmanager"},
             "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))}
    request = urllib.request.Request(doc["alertmanager"] + "/api/v2/alerts", data=json.dumps([alert]).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).close()
    wait_for(lambda: [d for d in fleet_stack.deliveries(bot) if d["alertname"] == "BotwatchTlsProbe"
                      and d["note"] == "no playbook: noted"], timeout=30, what="the probe delivered over HTTPS")
    assert fleet_stack.pid(bot) == pid


def test_a_host_cut_off_for_two_minutes_pages_once_and_nothing_restarts(fleet_stack):
    network = Network(fleet_stack.doc["network"]["tag"], fleet_stack.doc["network"]["subnet"])
    bots = ["host-3-bot-1", "host-3-bot-2"]
    pids = {bot: fleet_stack.pid(bot) for bot in bots}
    seen = len([text for text in fleet_stack.telegram() if "BotwatchHostDown" in text and "FIRING" in text.upper()])
    network.cut(3)
    try:
        wait_for(lambda: fleet_stack.query('ALERTS{alertname="BotwatchHostDown",alertstate="firing",host="host-3"}'),
                 timeout=60, what="BotwatchHostDown firing")
        time.sleep(120)
    finally:
        network.mend(3)
    wait_for(lambda: fleet_stack.query('up{job="botwatch-agents",host="host-3"} == 1'), timeout=60, what="host-3 back")
    wait_for(lambda: not fleet_stack.query('ALERTS{alertname="BotwatchHostDown"}'), timeout=60, what="HostDown over")
    time.sleep(15)                     # the bots are checked afresh: none of them is down
    pages = [text for text in fleet_stack.telegram() if "BotwatchHostDown" in text and "FIRING" in text.upper()]
    assert len(pages) - seen == 1, pages
    resolved = [text for text in fleet_stack.telegram() if "BotwatchHostDown" in text and "RESOLVED" in text.upper()]
    wait_for(lambda: len([t for t in fleet_stack.telegram() if "BotwatchHostDown" in t and "RESOLVED" in t.upper()
                          and "host-3" in t]) >= 1, timeout=60, what="the outage's end paged")
    assert len([t for t in fleet_stack.telegram() if "BotwatchHostDown" in t and "RESOLVED" in t.upper()
                and "host-3" in t]) == 1, resolved
    assert {bot: fleet_stack.pid(bot) for bot in bots} == pids
    assert fleet_stack.jobs("host = 'host-3'") == []


def test_a_fourth_host_joins_through_sd_without_a_restart(fleet_stack, tmp_path):
    doc = fleet_stack.doc
    network = Network(doc["network"]["tag"], doc["network"]["subnet"])
    config = yaml.safe_load((fleet_stack.state / "bots.yaml").read_text())
    port = free_port()
    bot = {"name": "host-4-bot-1", "host": "host-4", "health_endpoint": f"http://127.0.0.1:{port}/health",
           "data_file": str(tmp_path / "b.csv"), "journal": str(tmp_path / "b.jsonl"), "check_interval": 1,
           "pidfile": str(tmp_path / "b.pid")}
    config["bots"].append(bot)
    (tmp_path / "bots.yaml").write_text(yaml.safe_dump(config))
    network.add_host(4)
    processes = []
    try:
        inside = network.run_in(4)
        processes.append(subprocess.Popen(inside + BOTWATCH + [
            "paperbot", "--name", bot["name"], "--data-file", bot["data_file"], "--journal", bot["journal"],
            "--health-port", str(port), "--pidfile", bot["pidfile"], "--log-file", str(tmp_path / "b.log"),
            "--trade-interval", "0.5"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = f"{network.address(4)}:9817"
        # its own credential, issued as an operator would (only its hash goes to the shared ledger)
        issued = subprocess.run(BOTWATCH + ["agent-token", "host-4", "--config", str(tmp_path / "bots.yaml"),
                                            "--ledger", doc["ledger"]], capture_output=True, text=True, cwd=ROOT)
        assert issued.returncode == 0, issued.stderr
        (tmp_path / "agent-token").write_text(issued.stdout)
        # and its certificate from the fleet's CA, for the address Prometheus scrapes it at
        cert = CA.load(fleet_stack.state / "tls").issue("agent-host-4", [network.address(4)])
        web_config = tmp_path / "web.yml"
        web = yaml.safe_load((fleet_stack.state / "tls" / "agent-host-1-web.yml").read_text())
        web["tls_server_config"] = {"cert_file": str(cert.cert), "key_file": str(cert.key)}
        web_config.write_text(yaml.safe_dump(web))
        processes.append(subprocess.Popen(inside + BOTWATCH + [
            "agent", "--config", str(tmp_path / "bots.yaml"), "--host", "host-4", "--listen", address,
            "--token-file", str(tmp_path / "agent-token"), "--state-dir", str(tmp_path / "agent"),
            "--ca-file", doc["ca_file"], "--web-config", str(web_config),
            *[arg for url in doc["remediators"] for arg in ("--remediator", url)]], cwd=ROOT,
            stdout=open(tmp_path / "agent.log", "wb"), stderr=subprocess.STDOUT))
        wait_for(lambda: fleet_stack.query('tradingbot_up{host="host-4"} == 1'), timeout=60,
                 what="host-4's bot in Prometheus")
        wait_for(lambda: fleet_stack.query('up{job="botwatch-agents",host="host-4"} == 1', "prometheus-2"),
                 timeout=30, what="host-4 in the other Prometheus")
        status, body = fleet_stack.fetch(doc["remediator"] + "/sd")
        assert status == 200
        assert {group["labels"]["host"] for group in json.loads(body)} == {"host-1", "host-2", "host-3", "host-4"}
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", network.namespace(4)], check=False)   # its veth goes with it


def test_every_overview_panel_has_data_from_the_fleet(fleet_stack):
    """Last: by now every window of the fast rules is full."""
    fleet = json.loads((ROOT / "grafana" / "dashboards" / "fleet.json").read_text())
    empty = [f"{panel['title']}: {target['expr']}" for panel in fleet["panels"] for target in panel["targets"]
             if not fleet_stack.query(target["expr"].replace('"$host"', '"host-.*"').replace('"$bot"', '"host-.*"'))
             and target["expr"] != 'ALERTS{alertstate="firing"}'          # none may be firing now
             and "exchange_clock" not in target["expr"]]     # no demo bot names an exchange: test_exchange_clock.py
    assert not empty, "panels without data:\n" + "\n".join(empty)
