"""The remediator killed (SIGKILL) at each step of the restart and restore playbooks (the CSV procedure and
the SQLite one), then started again: no action lost, none done twice, the bot ends up running with a valid
file and every trade of its journal (or mirror).

The real `botwatch remediator` and a real paperbot; BOTWATCH_CRASH_AT names the step (botwatch/remediator/faults.py).
Every start of the bot goes through a wrapper that counts it.
"""

import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from botwatch.core.presets import open_database
from botwatch.core.tradefile import validate_file
from botwatch.remediator.restore.csvfile import STEPS
from botwatch.remediator.restore.sqlite import SQLITE_STEPS
from tests.conftest import BOTWATCH, ROOT, free_port, kill_pidfile, wait_for
from tests.fixtures.hummingbot_db import Fill, HummingbotFiles
from tests.remediator.conftest import TOKEN, alert, payload

pytestmark = pytest.mark.slow


class Setup:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        folder = tmp_path / "bots"
        folder.mkdir()
        self.files = {key: folder / f"crashy.{ext}" for key, ext in
                      (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
        self.starts = tmp_path / "starts"
        health = free_port()
        paperbot = BOTWATCH + ["paperbot", "--name", "crashy", "--trade-interval", "0.05", "--health-port", str(health),
                               "--seed", "3"] + [arg for key, path in self.files.items()
                                                 for arg in (f"--{key.replace('_file', '-file')}", str(path))]
        self.start_command = ["sh", "-c", f'echo start >> {self.starts}; exec "$@"', "sh", *paperbot]
        bot = {"name": "crashy", "type": "spot", "check_interval": 1, "health_endpoint": f"http://127.0.0.1:{health}/health",
               "start_command": self.start_command, **{k: str(v) for k, v in self.files.items()}}
        self.config = tmp_path / "bots.json"
        self.config.write_text(json.dumps({"bots": [bot], "remediation": {"verify_after": "1s"},
                                           "report": {"enabled": False}, "backup": {"dir": str(tmp_path / "backups")}}))
        (tmp_path / "token").write_text(TOKEN)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def remediator(self, crash_at: str | None = None) -> None:
        env = {**os.environ, "BOTWATCH_DATA_DIR": str(self.tmp / "var")}
        env.pop("BOTWATCH_CRASH_AT", None)
        if crash_at:
            env["BOTWATCH_CRASH_AT"] = crash_at
        self.process = subprocess.Popen(BOTWATCH + ["remediator", "--config", str(self.config), "--listen",
                                                    f"127.0.0.1:{self.port}", "--token-file", str(self.tmp / "token")],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=open(self.tmp / "remediator.log", "ab"))
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/healthy", timeout=2).status == 200,
                 what="the remediator")

    def send(self, body: str) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/alerts", data=body.encode(),
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=10).status == 200

    def actions(self, playbook: str | None = None) -> list[dict]:
        """The ledger's actions (of one playbook): what the remediator did, as it recorded it."""
        with sqlite3.connect(f"file:{self.tmp / 'var' / 'ledger.sqlite3'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(row) for row in db.execute("SELECT * FROM actions ORDER BY id")]
        return [row for row in rows if playbook is None or row["playbook"] == playbook]

    def bot_alive(self) -> bool:
        try:
            os.kill(int(self.files["pidfile"].read_text()), 0)
        except (OSError, ValueError):
            return False
        return True

    def start_count(self) -> int:
        return len(self.starts.read_text().splitlines()) if self.starts.exists() else 0

    def crash_then_recover(self, step: str, body: str) -> None:
        self.remediator(crash_at=step)
        self.send(body)
        assert self.process.wait(timeout=60) == -9, f"the remediator did not reach {step}"
        self.remediator()
        wait_for(lambda: (actions := self.actions()) and all(a["state"] == "done" for a in actions),
                 timeout=60, what=f"after a crash at {step}: every action done")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        kill_pidfile(self.files["pidfile"])


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.stop()


RESTART_STEPS = ["restart-started", "restart-before", "restart-after", "restart-verified", "restart-finished"]


@pytest.mark.parametrize("step", RESTART_STEPS)
def test_a_crash_at_each_step_of_a_restart(setup, step):
    setup.crash_then_recover(step, payload(alert("crashy")))
    [action] = setup.actions("restart")
    assert action["outcome"] in ("success", "skipped"), action
    if step in ("restart-after", "restart-verified"):
        assert action["outcome"] == "skipped" and "already up" in action["detail"]   # done before the crash
    wait_for(setup.bot_alive, what="the bot running")
    assert setup.start_count() == 1, "the bot was started exactly once"


def journal_ids(path: Path) -> list[str]:
    return [json.loads(line)["trade_id"] for line in path.read_text().splitlines() if line.strip()]


def csv_ids(path: Path) -> list[str]:
    return [line.split(",")[1] for line in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize("step", ["restore-started"] + [f"restore/{s}" for s in STEPS] + ["restore-finished"])
def test_a_crash_at_each_step_of_a_restore(setup, step):
    subprocess.Popen(setup.start_command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    csv = setup.files["data_file"]
    wait_for(lambda: csv.exists() and len(csv_ids(csv)) >= 20, what="20 fills")
    with open(csv, "a") as f:                                   # corrupt: a fill written twice
        f.write(csv.read_text().splitlines()[3] + "\n")
    assert not validate_file(csv).valid
    setup.crash_then_recover(step, payload(alert("crashy", alertname="TradingBotDataCorrupted")))
    [action] = setup.actions("restore")
    assert action["outcome"] == "success", action
    wait_for(setup.bot_alive, what="the bot running")
    assert setup.start_count() == 2, "started once by the test, once by the restore"
    assert len(list(csv.parent.glob("*.corrupt-*"))) == 1, "the corrupt file quarantined once"
    wait_for(lambda: len(csv_ids(csv)) >= 25, what="the bot trading again")
    kill_pidfile(setup.files["pidfile"])
    assert validate_file(csv).valid
    assert csv_ids(csv) == journal_ids(setup.files["journal"]), "every fill of the journal, once, in order"


class DatabaseSetup(Setup):
    """A Hummingbot-shaped bot: its database and log built to Hummingbot's schema, a stand-in process known by
    its pidfile (Hummingbot does not install here). Its fill events reach the remediator's mirror by the log."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.hb = HummingbotFiles(tmp_path / "hb")
        self.files = {"data_file": self.hb.db, "log_file": self.hb.log, "pidfile": tmp_path / "hb" / "hb.pid"}
        self.starts = tmp_path / "starts"
        self.start_command = ["sh", "-c", f'echo start >> {self.starts}; echo $$ > {self.files["pidfile"]}; '
                                          'exec sleep 100000']
        bot = {"name": "crashy", "preset": "hummingbot", "check_interval": 1, "start_command": self.start_command,
               **{k: str(v) for k, v in self.files.items()}}
        self.config = tmp_path / "bots.json"
        self.config.write_text(json.dumps({"bots": [bot], "remediation": {"verify_after": "1s"},
                                           "report": {"enabled": False}, "backup": {"dir": str(tmp_path / "backups")}}))
        (tmp_path / "token").write_text(TOKEN)
        self.port = free_port()
        self.process = None

    def fill_keys(self) -> set[tuple[str, str]]:
        with sqlite3.connect(f"file:{self.hb.db}?mode=ro", uri=True) as db:
            return set(db.execute('SELECT order_id, exchange_trade_id FROM "TradeFill"').fetchall())


def fills(start: int, count: int) -> list[Fill]:
    now = time.time() - 600
    return [Fill(now + n, f"o{n}", f"t{n}", "BTC-USDT", "BUY" if n % 2 else "SELL", "90000", "0.001", "0.09")
            for n in range(start, start + count)]


@pytest.mark.parametrize("step", [f"restore/{s}" for s in SQLITE_STEPS])
def test_a_crash_at_each_step_of_a_database_restore(tmp_path, step):
    s = DatabaseSetup(tmp_path)
    try:
        s.hb.add(*fills(0, 10))
        subprocess.Popen(s.start_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(s.bot_alive, what="the bot running")
        s.remediator()                          # backs the database up at start; mirrors the log's fill events
        wait_for(lambda: list((tmp_path / "backups").rglob("*.sqlite*")), what="a backup of the database")
        s.hb.add(*fills(10, 10))                # after the backup: in the log (the mirror), not in the backup
        mirror = tmp_path / "var" / "mirror" / "crashy.jsonl"
        wait_for(lambda: mirror.exists() and len(mirror.read_text().splitlines()) == 20, what="20 fills mirrored")
        s.process.terminate()
        s.process.wait(timeout=30)
        with open(s.hb.db, "r+b") as f:          # the header zeroed: not a database any more
            f.write(b"\0" * 16)
        s.crash_then_recover(step, payload(alert("crashy", alertname="TradingBotDataCorrupted")))
        [action] = s.actions("restore")
        assert action["outcome"] == "success", action
        wait_for(s.bot_alive, what="the bot running")
        assert s.start_count() == 2, "started once by the test, once by the restore"
        assert len(list(s.hb.db.parent.glob("*.sqlite.corrupt-*"))) == 1, "the damaged database quarantined once"
        assert not list(s.hb.db.parent.glob(".*restore-tmp*")), "no temporary copy left behind"
        assert open_database("hummingbot", s.hb.db).collect().valid
        assert s.fill_keys() == {(f.order_id, f.exchange_trade_id) for f in fills(0, 20)}, "every fill, once"
    finally:
        s.stop()
