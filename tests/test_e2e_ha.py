"""End to end under high availability: `botwatch up --ha` runs two Alertmanager peers in a cluster and two
Prometheus servers (each with its own replica label, dropped from the alerts it sends), both sending to
both peers. Alertmanager HA is at-least-once: the remediator must turn every copy of one incident into
exactly one restart — also when a peer dies or freezes during the incident, and when the remediator is so
slow to answer that the other peer resends. The fast path is off here: what is under test is the alert path,
Alertmanager's copies and resends (the fast path's own copies are test_fast_path's)."""

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from botwatch.up.stack import running_pid
from tests.conftest import http_get, wait_for
from tests.test_e2e import paperbot, running, service_pid

pytestmark = pytest.mark.slow


def counted(bot: dict, starts: Path) -> dict:
    """The bot with every start of it counted in `starts`."""
    return {**bot, "start_command": ["sh", "-c", f'echo start >> {starts}; exec "$@"', "sh", *bot["start_command"]]}


def ledger_rows(state: Path, sql: str) -> list[dict]:
    with sqlite3.connect(f"file:{state / 'remediator' / 'ledger.sqlite3'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql)]


@pytest.mark.parametrize("trouble", ["none", "alertmanager killed", "alertmanager-2 frozen", "slow remediator"])
def test_one_kill_one_restart_under_ha(tmp_path, trouble):
    bots = tmp_path / "bots"
    bots.mkdir()
    starts = tmp_path / "starts"
    victim = counted(paperbot("ha-victim", bots, seed=5), starts)
    env = {"BOTWATCH_WEBHOOK_DELAY": "20"} if trouble == "slow remediator" else {}
    with running(tmp_path, {"bots": [victim], "remediation": {"fast_path": False}}, "--ha", env=env) as stack:
        state = stack.state
        wait_for(lambda: running_pid(victim["pidfile"]), timeout=60, what="the victim running")
        wait_for(lambda: stack.value('tradingbot_up{bot="ha-victim"}') == 1, timeout=60, what="Prometheus sees it up")
        for server in ("prometheus", "prometheus-2"):     # both replicas scrape and evaluate
            url = json.loads((state / "stack.json").read_text())[server]
            wait_for(lambda: json.loads(http_get(f"{url}/api/v1/query?query=tradingbot_up"))["data"]["result"],
                     what=f"{server} scraping")
        starts.write_text("")                            # the stack's own start of it is not a restart
        pid = running_pid(victim["pidfile"])
        os.kill(pid, signal.SIGKILL)
        frozen = None
        if trouble == "alertmanager killed":
            os.kill(service_pid(state, "alertmanager"), signal.SIGKILL)
        elif trouble == "alertmanager-2 frozen":
            frozen = service_pid(state, "alertmanager-2")
            os.kill(frozen, signal.SIGSTOP)
        try:
            wait_for(lambda: (new := running_pid(victim["pidfile"])) and new != pid, timeout=90,
                     what="the victim restarted")
            time.sleep(35 if trouble == "slow remediator" else 20)    # any resend has arrived by now
        finally:
            if frozen:
                os.kill(frozen, signal.SIGCONT)
        if frozen:
            time.sleep(20)                               # the thawed peer catches up: still nothing new
        restarts = ledger_rows(state, "SELECT * FROM actions WHERE playbook = 'restart' AND outcome = 'success'")
        deliveries = ledger_rows(state, "SELECT * FROM deliveries WHERE alertname = 'TradingBotDown' "
                                        "AND status = 'firing'")
        assert len(starts.read_text().splitlines()) == 1, "restarted exactly once"
        assert len(restarts) == 1, restarts
        if trouble == "slow remediator":
            assert len(deliveries) >= 2, "the other peer resent what the slow receiver had not confirmed"
            assert {d["note"] for d in deliveries[1:]} == {"duplicate: already acted on"}
