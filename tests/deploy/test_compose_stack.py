"""The compose stack as a user runs it: the botwatch image built from the repository's Dockerfile, and
`docker-compose up -d` of the real docker-compose.yml, on the tests' private dockerd, next to a bot in a
container (an override file adds it, and a Telegram outbox: nothing leaves the machine).

Every botwatch service turns healthy (the image's HEALTHCHECK), Prometheus scrapes the exporter and has
the rules; a crash of the container bot is undone by the remediator container through the docker socket
(reached with DOCKER_GID, as the README says); a corrupt trade file on the bot's volume is restored with no
trade lost; `docker-compose stop` of the bot is the operator's and stays; the ledger outlives a restart of
the remediator container. The images are cached under build/images/ (tests/deploy/images.py).

The crash is a SIGKILL to the container's process from the host: from inside (`kill -9 1`), the kernel
never delivers SIGKILL to a PID namespace's init, so that is no crash at all; `docker kill` is an API kill,
which botwatch rightly counts as the operator's.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from botwatch.core import mixin, scrape
from botwatch.up.stack import TIMINGS, paced_routes
from tests.conftest import ROOT, free_port, http_get, require_tool, wait_for
from tests.deploy import images

pytestmark = pytest.mark.slow

BOT = "ctr-bot"
PROJECT = "bwcompose"
FAST = TIMINGS["fast"]
PORTS = ("EXPORTER", "REMEDIATOR", "ALERTMANAGER", "PROMETHEUS")


class Compose:
    def __init__(self, folder: Path, env: dict, ports: dict[str, int], report: dict):
        self.folder, self.env, self.ports, self.report = folder, env, ports, report
        self.binary = require_tool("docker-compose")

    def run(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run([self.binary, "-p", PROJECT, "-f", "docker-compose.yml", "-f", "override.yml", *args],
                                cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}"
        return result.stdout

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service.upper()]}"

    def inspect(self, service: str) -> dict:
        [cid] = self.run("ps", "-q", service).split() or [None]
        return json.loads(images.docker(self.env["DOCKER_HOST"], "inspect", cid).stdout)[0]

    def query(self, expr: str) -> list:
        body = json.loads(http_get(f"{self.url('prometheus')}/api/v1/query?query={urllib.parse.quote(expr)}"))
        return body["data"]["result"]

    def page(self, path: str) -> str:
        return http_get(self.url("remediator") + path).decode()


def project_folder(folder: Path) -> None:
    """What a user has beside docker-compose.yml: the repository's prometheus/ and alertmanager/ (at the fast
    pace here), config/bots.yaml, secrets/, data/."""
    shutil.copy(ROOT / "docker-compose.yml", folder)
    shutil.copytree(ROOT / "prometheus", folder / "prometheus")
    shutil.copytree(ROOT / "alertmanager", folder / "alertmanager")
    for rules in (folder / "prometheus" / "rules").glob("*.yml"):
        rules.unlink()
    (folder / "prometheus" / "rules" / "botwatch.rules.yml").write_text(mixin.render(FAST["rules"]))
    prometheus = yaml.safe_load((ROOT / "prometheus" / "compose" / "prometheus.yml").read_text())
    prometheus["global"].update(scrape_interval=FAST["scrape"], evaluation_interval=FAST["scrape"])
    (folder / "prometheus" / "compose" / "prometheus.yml").write_text(scrape.render(prometheus, "# the tests' pace\n"))
    template = folder / "alertmanager" / "alertmanager.yml"
    template.write_text(paced_routes(template.read_text(), "fast"))
    (folder / "config").mkdir()
    (folder / "config" / "bots.yaml").write_text(yaml.safe_dump({
        "telegram": {"bot_token_file": "/run/secrets/telegram_token", "chat_id": 1, "api_url": "http://telegram:8081"},
        "report": {"enabled": False, "prometheus_url": "http://prometheus:9090"},
        "backup": {"dir": "/var/lib/botwatch/backups", "interval": "10s"},     # the remediator's volume
        "remediation": {**FAST["remediation"], "alertmanager_urls": ["http://alertmanager:9093"]},
        "status_page": {"public": True},
        "bots": [{"name": BOT, "compose_service": BOT, "check_interval": 1, "type": "spot",
                  "health_endpoint": f"http://{BOT}:8080/health", "data_file": f"/data/{BOT}.csv",
                  "journal": f"/data/{BOT}.jsonl", "log_file": f"/data/{BOT}.log", "starting_balance": 1000,
                  "stale_after": "30s", "expected_trades_per_hour": {"min": 900, "max": 30000}}]}))
    secrets_dir = folder / "secrets"
    secrets_dir.mkdir()
    for name in ("webhook_token", "grafana_admin_password", "minio_user", "minio_password"):
        (secrets_dir / name).write_text(secrets.token_urlsafe(24) + "\n")
    (secrets_dir / "telegram_token").write_text("0:botwatch-local-outbox\n")
    for name in secrets_dir.iterdir():
        name.chmod(0o644)                  # the containers' users read them (uid 10001, Alertmanager's 65534)
    for name in ("data", "outbox"):
        (folder / name).mkdir()
        (folder / name).chmod(0o777)       # the bot and the remediator write there as uid 10001
    # dns: a name no container has is never asked of a server off this machine (none answers from here), and
    # given up on after a second, not ten (a stopped container's name, looked up by every health check)
    dns = {"dns": ["127.0.0.1"], "dns_opt": ["timeout:1", "attempts:1"]}
    local_dns = {name: dns for name in ("exporter", "remediator", "alertmanager", "prometheus")}
    (folder / "override.yml").write_text(yaml.safe_dump({"services": {**local_dns,
        BOT: {"image": images.BOTWATCH, "restart": "no", "volumes": ["./data:/data"], **dns,
              "command": ["paperbot", "--name", BOT, "--data-file", f"/data/{BOT}.csv", "--journal",
                          f"/data/{BOT}.jsonl", "--health-port", "8080", "--health-host", "0.0.0.0", "--pidfile",
                          "/tmp/bot.pid", "--log-file", f"/data/{BOT}.log", "--trade-interval", "0.5", "--seed", "3"]},
        "telegram": {"image": images.BOTWATCH, "restart": "no", "volumes": ["./outbox:/outbox"], **dns,
                     "entrypoint": ["python", "-m", "botwatch.up.standins.outbox"],
                     "command": ["--listen", "0.0.0.0:8081", "--file", "/outbox/telegram.jsonl"],
                     "healthcheck": {"disable": True}}}}))


@pytest.fixture(scope="module")
def stack(dockerd, tmp_path_factory):
    host = dockerd.host
    report = {}
    started = time.monotonic()
    images.base_image(host)
    report.update(images.botwatch_image(host), image_mb=round(images.image_size(host, images.BOTWATCH) / 1e6))
    images.standin_images(host)
    report["images_s"] = round(time.monotonic() - started, 1)
    folder = tmp_path_factory.mktemp("compose")
    project_folder(folder)
    socket = host.removeprefix("unix://")
    ports = {name: free_port() for name in PORTS}
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_SOCKET": socket, "DOCKER_GID": str(os.stat(socket).st_gid),
           **{f"BOTWATCH_{name}_PORT": str(port) for name, port in ports.items()}}
    compose = Compose(folder, env, ports, report)
    try:
        compose.run("up", "-d", timeout=600)
        yield compose
    finally:
        logs = subprocess.run([compose.binary, "-p", PROJECT, "-f", "docker-compose.yml", "-f", "override.yml", "logs",
                               "--no-color", "--tail", "80"], cwd=folder, env=env, capture_output=True, text=True)
        (folder / "compose.log").write_text(logs.stdout + logs.stderr)
        subprocess.run([compose.binary, "-p", PROJECT, "-f", "docker-compose.yml", "-f", "override.yml", "down", "-v",
                        "--timeout", "5"], cwd=folder, env=env, capture_output=True, timeout=300)
        print(f"compose stack: {report}; logs in {folder / 'compose.log'}")


def healthy(stack: Compose, service: str) -> bool:
    return stack.inspect(service)["State"].get("Health", {}).get("Status") == "healthy"


def test_every_service_is_healthy_prometheus_scrapes_them_and_has_the_rules(stack):
    for service in ("exporter", "remediator"):
        wait_for(lambda: healthy(stack, service), timeout=120, interval=1, what=f"{service} healthy")
    assert stack.inspect("exporter")["Config"]["User"] == "botwatch"       # the image's non-root user, kept

    def targets():
        active = json.loads(http_get(stack.url("prometheus") + "/api/v1/targets"))["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}
    wait_for(lambda: set(targets().values()) == {"up"} and len(targets()) == 4, timeout=120, interval=1,
             what="every scrape target up")
    groups = json.loads(http_get(stack.url("prometheus") + "/api/v1/rules"))["data"]["groups"]
    assert "TradingBotDown" in {rule["name"] for group in groups for rule in group["rules"]}
    wait_for(lambda: stack.query(f'tradingbot_up{{bot="{BOT}"}} == 1'), timeout=120, interval=1,
             what="the container bot seen up through the docker socket")
    assert json.loads(http_get(stack.url("alertmanager") + "/api/v2/status"))["config"]["original"]


def test_a_crashed_container_bot_is_started_again_by_the_remediator_container(stack):
    wait_for(lambda: stack.query(f'tradingbot_up{{bot="{BOT}"}} == 1'), timeout=120, interval=1, what="bot up")
    before = stack.inspect(BOT)["State"]
    killed = time.monotonic()
    os.kill(before["Pid"], signal.SIGKILL)
    wait_for(lambda: (lambda s: s["Running"] and s["StartedAt"] != before["StartedAt"])(stack.inspect(BOT)["State"]),
             timeout=90, interval=0.2, what="the container bot running again")
    stack.report["crash_to_running_s"] = round(time.monotonic() - killed, 2)
    [restart] = wait_for(lambda: restarts(stack), timeout=60, interval=0.5, what="the restart in the ledger")
    assert "exit code 137" in restart and "up after" in restart
    assert stack.inspect(BOT)["RestartCount"] == 0            # botwatch started it, not a restart policy


def restarts(stack: Compose) -> list[str]:
    """The details of the bot's successful restarts, as its page lists them (from the remediator's ledger)."""
    return re.findall(r'playbook">restart</td>\s*<td data-label="state">done</td><td data-label="outcome">success'
                      r'</td>\s*<td data-label="detail">([^<]*)</td>', stack.page(f"/bots/{BOT}"))


def test_a_corrupt_trade_file_on_the_bots_volume_is_restored_with_no_trade_lost(stack):
    data = stack.folder / "data"
    wait_for(lambda: len((data / f"{BOT}.csv").read_text().splitlines()) > 5, timeout=60, what="some trades")
    with open(data / f"{BOT}.csv", "a") as f:
        f.write("garbage,not,a,trade\n")
    wait_for(lambda: list(data.glob(f"{BOT}.csv.corrupt-*")), timeout=180, interval=0.5,
             what="the corrupt file kept aside by the restore")
    wait_for(lambda: stack.query(f'tradingbot_data_file_valid{{bot="{BOT}"}} == 1') and
             stack.inspect(BOT)["State"]["Running"], timeout=120, interval=0.5, what="valid again and running")

    def ids(path: Path, journal: bool) -> list[str]:
        lines = path.read_text().splitlines()
        return [json.loads(line)["trade_id"] for line in lines if line.strip()] if journal else \
            [line.split(",")[1] for line in lines[1:]]
    journal = ids(data / f"{BOT}.jsonl", True)
    assert set(journal) <= set(ids(data / f"{BOT}.csv", False)) and len(journal) == len(set(journal))


def test_the_remediator_container_keeps_its_ledger_across_a_restart(stack):
    before = restarts(stack)
    assert before
    started = stack.inspect("remediator")["State"]["StartedAt"]
    stack.run("restart", "remediator")
    assert stack.inspect("remediator")["State"]["StartedAt"] != started
    wait_for(lambda: healthy(stack, "remediator"), timeout=120, interval=1, what="the remediator healthy again")
    assert restarts(stack) == before


def test_compose_stop_of_the_bot_is_its_operators_and_is_not_undone(stack):
    wait_for(lambda: stack.inspect(BOT)["State"]["Running"], timeout=60, what="bot running")
    stopped = time.monotonic()
    stack.run("stop", BOT)
    wait_for(lambda: "stopped by" in stack.page("/board"), timeout=90, interval=0.5,
             what="the stop recorded as the operator's")
    # every part knows: the exporter saw it down and publishes the hold (its alerts stay quiet; one that fired
    # first met the hold: a restart `held`); and a crash would have been undone twice over by now
    crash = stack.report.get("crash_to_running_s", 10.0)
    wait_for(lambda: stack.query(f'tradingbot_up{{bot="{BOT}"}} == 0')
             and stack.query(f'tradingbot_paused{{bot="{BOT}",reason="operator_stop"}} == 1')
             and time.monotonic() - stopped > 2 * crash, timeout=90, interval=0.5, what="every part told of the stop")
    assert not stack.inspect(BOT)["State"]["Running"] and len(restarts(stack)) == 1
    stack.run("start", BOT)
    wait_for(lambda: "stopped by" not in stack.page("/board"), timeout=90, interval=0.5,
             what="started by its operator: botwatch's again")
