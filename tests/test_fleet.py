"""Many hosts on loopback: two remediator replicas on one PostgreSQL ledger, an agent per host, real
paperbots. Each test kills a part mid-job and checks the job ran once, on its host, under the current
claim. (The same with network namespaces, Prometheus' discovery and an Alertmanager pair: test_fleet_netns.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from botwatch.remediator import agent_tokens
from botwatch.remediator.ledger import Ledger
from botwatch.up.postgres import PostgresCluster
from botwatch.up.stack import running_pid
from tests.conftest import BOTWATCH, ROOT, free_port, http_get, wait_for, write_config

pytestmark = pytest.mark.slow
TOKEN = "fleet-test-token"


@pytest.fixture(scope="module")
def own_postgres():
    """A cluster of this module's own: one test stops it."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.remove()


class Fleet:
    def __init__(self, tmp_path, cluster: PostgresCluster, paperbots):
        self.tmp, self.cluster, self.paperbots = tmp_path, cluster, paperbots
        self.url = cluster.create_database(f"fleet{free_port()}")
        (tmp_path / "token").write_text(TOKEN + "\n")
        self.processes: dict[str, subprocess.Popen] = {}
        self.remediators: list[str] = []
        self.bots = {}

    def configure(self, hosts: dict[str, list[str]], **remediation) -> None:
        entries = []
        for host, names in hosts.items():
            for name in names:
                bot = self.paperbots(name)
                self.bots[name] = bot
                entries.append(bot.bot_config(host=host))
        write_config(self.tmp / "bots.json", entries, remediation={
            "verify_after": "1s", "backoff": ["1s"], "job_lease": "3s", "job_deadline": "30s", **remediation},
            report={"enabled": False})

    def _start(self, name: str, argv: list[str], ready: str, env: dict | None = None) -> None:
        log = open(self.tmp / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(BOTWATCH + argv, cwd=ROOT, stdout=log, stderr=log,
                                                env={**os.environ, **(env or {})})
        wait_for(lambda: http_get(ready), timeout=30, what=f"{name} up")

    def remediator(self, name: str) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._start(name, ["remediator", "--config", str(self.tmp / "bots.json"), "--listen", f"127.0.0.1:{port}",
                           "--token-file", str(self.tmp / "token"), "--ledger", self.url],
                    url + "/-/healthy", {"BOTWATCH_DATA_DIR": str(self.tmp / name)})
        self.remediators.append(url)
        return url

    def agent(self, host: str, remediators: list[str] | None = None) -> str:
        port = free_port()
        argv = ["agent", "--config", str(self.tmp / "bots.json"), "--host", host, "--token-file",
                str(self.agent_token(host)), "--listen", f"127.0.0.1:{port}", "--state-dir", str(self.tmp / f"agent-{host}")]
        for url in remediators or self.remediators:
            argv += ["--remediator", url]
        self._start(f"agent-{host}", argv, f"http://127.0.0.1:{port}/metrics")
        return f"http://127.0.0.1:{port}"

    def agent_token(self, host: str) -> Path:
        """The host's agent token file, issued once (as `botwatch agent-token HOST` does) in the shared ledger."""
        path = self.tmp / f"agent-token-{host}"
        if not path.exists():
            ledger = Ledger(self.url)
            try:
                path.write_text(agent_tokens.issue(ledger, host, time.time()) + "\n")
            finally:
                ledger.close()
        return path

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for bot in self.bots.values():           # the agents' restarts run in sessions of their own
            pid = running_pid(bot.pidfile)
            if pid:
                os.kill(pid, signal.SIGTERM)
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def jobs(self, bot: str, backups: bool = False) -> list[dict]:
        """The bot's jobs (or, with `backups`, the backups recorded: done at once, never jobs)."""
        with psycopg.connect(self.url, row_factory=psycopg.rows.dict_row) as db:
            return db.execute(f"SELECT * FROM actions WHERE bot = %s AND playbook {'=' if backups else '<>'} 'backup' "
                              "ORDER BY id", (bot,)).fetchall()


@pytest.fixture
def fleet(tmp_path, own_postgres, paperbots):
    if not own_postgres.running():
        own_postgres.start()
    fleet = Fleet(tmp_path, own_postgres, paperbots)
    yield fleet
    fleet.stop()


def post(url: str, path: str, body: dict, token: str = TOKEN) -> int:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def alert_down(bot: str, starts_at: str = "2026-11-26T08:00:00Z", alertname: str = "TradingBotDown") -> dict:
    return {"version": "4", "status": "firing", "receiver": "remediator", "groupKey": "{}", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": {"alertname": alertname, "bot": bot,
                                                        "severity": "remediate"},
                        "annotations": {}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": f"fp-{alertname}-{bot}"}]}


def deliver_to_all(urls: list[str], body: dict) -> list[int]:
    """What an Alertmanager pair does: every replica gets the alert, at about the same time."""
    codes = []
    threads = [threading.Thread(target=lambda u=url: codes.append(post(u, "/alerts", body))) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_a_restart_runs_once_on_its_own_host_with_two_replicas_delivering(fleet):
    fleet.configure({"host-a": ["a1"], "host-b": ["b1", "b2"]})
    fleet.remediator("r1"), fleet.remediator("r2")
    fleet.agent("host-a"), fleet.agent("host-b")
    fleet.bots["b1"].kill()
    for _ in range(3):                                   # each peer resends too
        assert deliver_to_all(fleet.remediators, alert_down("b1")) == [200, 200]
    wait_for(lambda: running_pid(fleet.bots["b1"].pidfile), timeout=30, what="b1 restarted")
    wait_for(lambda: fleet.jobs("b1") and fleet.jobs("b1")[-1]["state"] == "done", what="the job recorded")
    [job] = fleet.jobs("b1")
    assert (job["playbook"], job["outcome"], job["host"], job["attempt"]) == ("restart", "success", "host-b", 1)
    assert job["worker"].startswith("host-b/")
    assert fleet.jobs("a1") == [] and fleet.jobs("b2") == []
    sd = json.loads(http_get(fleet.remediators[1] + "/sd"))
    assert sorted(group["labels"]["host"] for group in sd) == ["host-a", "host-b"]
    metrics = http_get(fleet.remediators[0] + "/metrics").decode()
    assert 'botwatch_agent_last_seen_timestamp_seconds{host="host-b"}' in metrics
    assert 'botwatch_jobs{state="queued"} 0.0' in metrics


def test_an_agent_killed_mid_job_loses_it_and_its_late_end_is_refused(fleet):
    fleet.configure({"host-c": ["c1"]}, verify_after="4s")
    remediator = fleet.remediator("r1")
    fleet.agent("host-c")
    fleet.bots["c1"].kill()
    assert post(remediator, "/alerts", alert_down("c1")) == 200
    wait_for(lambda: fleet.jobs("c1") and fleet.jobs("c1")[0]["state"] == "running", what="the job running")
    fleet.kill("agent-host-c")                           # SIGKILL mid-job (restarting, or verifying)
    [held] = fleet.jobs("c1")
    assert (held["state"], held["attempt"]) == ("running", 1)
    fleet.agent("host-c")                                # started again, as systemd would
    wait_for(lambda: fleet.jobs("c1")[0]["state"] == "done", timeout=30, what="the job ended by the new agent")
    [job] = fleet.jobs("c1")
    # claimed again once the dead agent's 3 s lease lapsed; the bot it had already started is not started twice
    assert job["attempt"] == 2 and job["outcome"] in ("success", "skipped"), job
    assert job["worker"] != held["worker"]
    assert running_pid(fleet.bots["c1"].pidfile)
    late = {"host": "host-c", "attempt": 1, "outcome": "success", "detail": "I restarted it (I was dead)"}
    token = fleet.agent_token("host-c").read_text().strip()
    assert post(remediator, f"/agent/jobs/{job['id']}/finish", late, token) == 409   # what the dead one would say
    assert fleet.jobs("c1")[0]["detail"] == job["detail"]


def test_an_agent_frozen_past_its_lease_has_its_restart_recorded_as_done_after_its_lease(fleet):
    """The agent restarts the bot, then freezes (SIGSTOP) past its lease and the job's deadline: the job
    expires and the late end is refused (fencing), but the restart that happened is in the ledger, the
    operations log and botwatch_bot_restarts_total, once."""
    fleet.configure({"host-c": ["c1"]}, verify_after="4s", job_deadline="6s")
    remediator = fleet.remediator("r1")
    fleet.agent("host-c")
    fleet.bots["c1"].kill()
    assert post(remediator, "/alerts", alert_down("c1")) == 200
    wait_for(lambda: running_pid(fleet.bots["c1"].pidfile), what="the agent's restart")
    agent = fleet.processes["agent-host-c"]
    agent.send_signal(signal.SIGSTOP)                    # frozen while it verifies
    try:
        wait_for(lambda: fleet.jobs("c1")[0]["outcome"] == "expired", timeout=30, what="the job expired")
    finally:
        agent.send_signal(signal.SIGCONT)
    wait_for(lambda: len(fleet.jobs("c1")) == 2, timeout=30, what="the late end recorded")
    expired, late = fleet.jobs("c1")
    assert expired["outcome"] == "expired"
    # its verification's ledger write was refused (fenced), so it could not call it a success; what it did is said
    assert late["detail"].startswith("done after its lease") and "restarted" in late["detail"], late
    opslog = (fleet.tmp / "r1" / "memory" / "bot-operations.md").read_text()
    assert "done after its lease" in opslog
    metrics = http_get(remediator + "/metrics").decode()
    assert 'botwatch_bot_restarts_total{bot="c1"} 1.0' in metrics
    assert len(fleet.jobs("c1")) == 2


def test_a_replica_killed_mid_job_and_the_agent_finishes_through_the_other(fleet):
    # a lease long enough that only the replica's death can interrupt the job: with the module's 3 s the
    # loaded fresh clone lost attempt 1's lease before r1 was killed (the bot started 3 s after the claim), and
    # the job ended as attempt 2 — a lapse this test is not about (test_an_agent_killed_mid_job_… is)
    fleet.configure({"host-b": ["b1"]}, verify_after="4s", job_lease="15s")
    r1, r2 = fleet.remediator("r1"), fleet.remediator("r2")
    fleet.agent("host-b", [r1, r2])                  # it talks to r1 while r1 answers
    fleet.bots["b1"].kill()
    assert deliver_to_all([r1, r2], alert_down("b1")) == [200, 200]
    wait_for(lambda: fleet.jobs("b1") and fleet.jobs("b1")[0]["state"] == "running", what="the job running")
    fleet.kill("r1")                                  # mid-job: the agent renews and reports to r2
    wait_for(lambda: fleet.jobs("b1")[0]["state"] == "done", timeout=45, what="the job recorded")
    [job] = fleet.jobs("b1")
    # attempt 1, or 2 when the agent stalled past the lease (once 15 s between claim and start on a loaded
    # fresh clone, cause not found): either way one job, ended through r2, and the bot started once
    assert job["outcome"] == "success" and job["attempt"] in (1, 2), job
    assert running_pid(fleet.bots["b1"].pidfile)
    started = (fleet.tmp / "agent-host-b.log").read_text().count("b1: started pid")
    assert started == 1, f"b1 started {started} times"


def test_postgresql_down_means_503_and_nothing_runs_then_the_job_runs_once(fleet):
    fleet.configure({"host-b": ["b1"]})
    r1 = fleet.remediator("r1")
    agent = fleet.agent("host-b")
    fleet.cluster.stop()
    fleet.bots["b1"].kill()          # after: the agent's fast path tells the death at once (503 now, retried)
    try:
        assert post(r1, "/alerts", alert_down("b1")) == 503         # Alertmanager will retry it
        time.sleep(3)
        assert running_pid(fleet.bots["b1"].pidfile) is None          # nothing decided, nothing runs
        assert b'tradingbot_up{bot="b1",host="host-b"} 0.0' in http_get(agent + "/metrics")   # still watched
    finally:
        fleet.cluster.start()
    wait_for(lambda: post(r1, "/alerts", alert_down("b1")) == 200, timeout=30, what="the retried delivery taken")
    assert post(r1, "/alerts", alert_down("b1")) == 200
    wait_for(lambda: running_pid(fleet.bots["b1"].pidfile), timeout=30, what="b1 restarted")
    wait_for(lambda: fleet.jobs("b1")[-1]["state"] == "done", what="the job recorded")
    assert [(job["outcome"], job["attempt"]) for job in fleet.jobs("b1")] == [("success", 1)]


def test_a_corrupt_file_on_an_agents_host_is_restored_there_through_its_claim(fleet):
    """The restore playbook on an agent: the backup the agent made, its progress kept in the central ledger
    under the job's claim, the journal's fills replayed."""
    fleet.configure({"host-b": ["b1"]})
    remediator = fleet.remediator("r1")
    agent = fleet.agent("host-b")
    bot = fleet.bots["b1"]
    wait_for(lambda: [backup for backup in fleet.jobs("b1", backups=True) if backup["outcome"] == "success"],
             timeout=30, what="the agent's first backup of b1, told to the remediator")
    assert 'botwatch_backups_total{bot="b1",outcome="success"} 1.0' in http_get(remediator + "/metrics").decode()
    time.sleep(1)
    with open(bot.csv, "ab") as f:
        f.write(b"\x00\x00garbage,not,a,row\n")
    wait_for(lambda: b'tradingbot_data_file_valid{bot="b1",host="host-b"} 0.0' in http_get(agent + "/metrics"),
             what="the corruption seen")
    assert post(remediator, "/alerts", alert_down("b1", alertname="TradingBotDataCorrupted")) == 200
    wait_for(lambda: fleet.jobs("b1") and fleet.jobs("b1")[-1]["state"] == "done", timeout=60, what="the restore")
    [job] = fleet.jobs("b1")
    assert (job["playbook"], job["outcome"], job["host"]) == ("restore", "success", "host-b"), job["detail"]
    with psycopg.connect(fleet.url) as db:
        [(step,)] = db.execute("SELECT value FROM kv WHERE key = %s", (f"restore-step:{job['id']}",)).fetchall()
    assert json.loads(step) == "started"
    wait_for(lambda: b'tradingbot_data_file_valid{bot="b1",host="host-b"} 1.0' in http_get(agent + "/metrics"),
             what="the restored file valid")
    journal = {json.loads(line)["trade_id"] for line in bot.journal.read_text().splitlines() if line.strip()}
    rows = [line.split(",")[1] for line in bot.csv.read_text().splitlines()[1:]]
    assert len(rows) == len(set(rows)) and journal <= set(rows)


def test_a_bot_killed_on_an_agents_host_is_restarted_by_its_agent_through_its_claim_while_a_replica_is_down(fleet):
    """The fast path in a fleet: no alert is posted here (no Prometheus): the agent's pidfd sees the death,
    tells whichever replica answers (r1 is down), and claims and runs the restart job itself, once."""
    fleet.configure({"host-b": ["b1"]})
    r1, r2 = fleet.remediator("r1"), fleet.remediator("r2")
    fleet.agent("host-b", [r1, r2])
    old = running_pid(fleet.bots["b1"].pidfile)
    wait_for(lambda: fleet.jobs("b1") == [] and http_get(r2 + "/sd"), what="the agent polling")
    fleet.kill("r1")
    fleet.bots["b1"].kill()
    wait_for(lambda: (pid := running_pid(fleet.bots["b1"].pidfile)) and pid != old, timeout=10,
             what="b1 restarted by its agent within 10 s, with no alert")
    wait_for(lambda: fleet.jobs("b1") and fleet.jobs("b1")[-1]["state"] == "done", timeout=30, what="the job recorded")
    [job] = fleet.jobs("b1")
    assert (job["playbook"], job["alertname"], job["outcome"], job["host"], job["attempt"]) == \
        ("restart", "TradingBotDown", "success", "host-b", 1), job
    assert job["worker"].startswith("host-b/") and job["fingerprint"] == "down:b1"
