"""Restart immediately (remediation.fast_path): a paperbot killed with SIGKILL, checked every 60 s as a user's
config has it, is serving again within seconds under `botwatch up` — one restart, one incident, and
Prometheus' TradingBotDown for that death, when Alertmanager delivers it, recorded as its duplicate. With the
fast path off, the same kill waits for the two-check rule (the old timing)."""

import contextlib
import os
import signal
import sqlite3
import time

import pytest

from tests.conftest import BOTWATCH, http_get, parse_metrics, sample, wait_for
from tests.test_e2e import paperbot, running

pytestmark = pytest.mark.slow

START_DELAY = 3     # seconds the bot takes to serve after it starts: long enough for Prometheus to see it down


def user_bot(tmp_path, name: str) -> dict:
    """A paperbot as a user configures it: no check_interval (60 s), and a start that takes a few seconds."""
    folder = tmp_path / "bots"
    folder.mkdir(exist_ok=True)
    bot = paperbot(name, folder)
    del bot["check_interval"]
    bot["start_command"] = ["sh", "-c", f'sleep {START_DELAY}; exec "$@"', "sh", *bot["start_command"]]
    return bot


def pid_of(bot: dict) -> int | None:
    try:
        return int(open(bot["pidfile"]).read().strip())
    except (OSError, ValueError):
        return None


def serving(bot: dict, old_pid: int) -> bool:
    pid = pid_of(bot)
    return pid is not None and pid != old_pid and b"ok" in http_get(bot["health_endpoint"], timeout=1)


def remediator_restarts(stack, bot: str) -> float:
    return sample(parse_metrics(http_get(stack.info["remediator"] + "/metrics").decode()),
                  "botwatch_bot_restarts_total", bot=bot) or 0.0


def ledger_rows(stack, sql: str, *args) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(stack.state / "remediator" / "ledger.sqlite3", timeout=10)) as db:
        return db.execute(sql, args).fetchall()


def kill_when_up(stack, bot: dict) -> tuple[int, float]:
    wait_for(lambda: stack.value(f'tradingbot_up{{bot="{bot["name"]}"}}') == 1, timeout=90, what="the bot up")
    pid = pid_of(bot)
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


@pytest.mark.timeout(400)
def test_a_killed_bot_is_serving_again_within_seconds_once_and_the_later_alert_is_its_duplicate(tmp_path):
    bot = user_bot(tmp_path, "fast-one")
    with running(tmp_path, {"bots": [bot]}) as stack:
        old, killed = kill_when_up(stack, bot)
        wait_for(lambda: serving(bot, old), timeout=10, interval=0.1, what="serving again within 10 s of the kill")
        # the bot was down for START_DELAY seconds, checked every second: Prometheus (1 s scrapes here) saw two
        # failed checks, TradingBotDown fired and Alertmanager delivered it — the same death, already handled
        wait_for(lambda: ledger_rows(stack, "SELECT note FROM deliveries WHERE bot = ? AND status = 'firing' "
                                            "AND alertname = 'TradingBotDown'", bot["name"]),
                 timeout=60, what="Alertmanager's TradingBotDown delivered")
        wait_for(lambda: not stack.query(f'ALERTS{{bot="{bot["name"]}",alertname="TradingBotDown"}}'), timeout=60,
                 what="TradingBotDown resolved")
        notes = ledger_rows(stack, "SELECT status, note FROM deliveries WHERE bot = ? AND alertname = "
                                   "'TradingBotDown' ORDER BY id", bot["name"])
        assert notes[0] == ("death", "scheduled restart"), notes
        assert {note for status, note in notes if status == "firing"} == {"duplicate: already acted on"}, notes
        assert ledger_rows(stack, "SELECT COUNT(DISTINCT fingerprint) FROM incidents WHERE bot = ?",
                           bot["name"]) == [(1,)]
        restarts = ledger_rows(stack, "SELECT outcome FROM actions WHERE bot = ? AND playbook = 'restart'", bot["name"])
        assert restarts == [("success",)]
        assert remediator_restarts(stack, bot["name"]) == 1


@pytest.mark.timeout(400)
def test_with_the_fast_path_off_the_same_kill_waits_for_two_checks(tmp_path):
    """The bench's comparison is honest: the same stack, the same bot, `remediation.fast_path: false`."""
    bot = user_bot(tmp_path, "slow-one")
    with running(tmp_path, {"bots": [bot], "remediation": {"fast_path": False}}) as stack:
        old, killed = kill_when_up(stack, bot)
        waited = wait_for(lambda: serving(bot, old) and time.monotonic() - killed, timeout=200, interval=0.2,
                          what="restarted by TradingBotDown")
        assert waited > 30, f"back after {waited:.1f}s: two failed checks 60 s apart come first"
        wait_for(lambda: remediator_restarts(stack, bot["name"]) == 1, timeout=60, what="its restart counted")
        notes = ledger_rows(stack, "SELECT status FROM deliveries WHERE bot = ? ORDER BY id", bot["name"])
        assert ("death",) not in notes
