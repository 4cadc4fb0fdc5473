"""The stop watch's decisions, one by one: whose stop a stopped Freqtrade is (its operator's, its own after an
error, or the initial_state of botwatch's own restart), told once, ended when it runs again."""

from __future__ import annotations

from botwatch.core.config import config_from_mapping
from botwatch.remediator.intent.pauses import Pauses
from botwatch.remediator.intent.silences import Silences
from botwatch.remediator.intent.stops import SELF_STOP, StopWatch
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.tell.opslog import OperationsLog
from tests.conftest import free_port
from tests.remediator.conftest import FakeClock, RecordingRuntime


class FakeFreqtrade:
    """Freqtrade's API as the stop watch reads it: its state, and /start."""

    def __init__(self, state: str = "running"):
        self.state_now, self.starts = state, 0

    def state(self) -> str:
        return self.state_now

    def start(self) -> bool:
        self.starts += 1
        self.state_now = "running"
        return True


class LoggingRuntime(RecordingRuntime):
    def __init__(self, bot, log: str = ""):
        super().__init__(bot, up=True)
        self.log = log

    def recent_logs(self, lines=20):
        return self.log


def watch(tmp_path, on_stopped="notify", log=""):
    config = config_from_mapping({"bots": [{
        "name": "ft", "preset": "freqtrade", "process_name": "freqtrade", "api_url": "http://127.0.0.1:1",
        "data_file": "ft.sqlite", "on_stopped": on_stopped}]}, base=tmp_path)
    clock, told = FakeClock(), []
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    pauses = Pauses(config, ledger, OperationsLog(tmp_path / "ops.md"), told.append, clock,
                    Silences([f"http://127.0.0.1:{free_port()}"]))
    api, runtime = FakeFreqtrade(), LoggingRuntime(config.bots[0], log)
    stops = StopWatch(config, ledger, pauses, {"ft": runtime}, {"ft": api}, clock)
    pauses.on_resumed = stops.resumed
    return stops, api, clock, told


def held(stops):
    return [p for p in stops.pauses.active() if p.reason == "operator_stop"]


def test_stopped_by_its_operator_is_held_told_once_and_released_when_it_runs_again(tmp_path):
    stops, api, clock, told = watch(tmp_path)
    stops.look("ft")
    api.state_now = "stopped"
    clock.now += 5
    stops.look("ft")
    stops.look("ft")
    [pause] = held(stops)
    assert (pause.who, pause.comment) == ("its operator", "Freqtrade stopped through its own API or Telegram")
    assert api.starts == 0
    assert len(told) == 1 and "stopped by its operator" in told[0] and "botwatch resume ft" in told[0]
    api.state_now = "running"                         # Freqtrade's /start, by its operator
    stops.look("ft")
    assert held(stops) == [] and api.starts == 0


def test_resume_hands_a_stopped_freqtrade_back_by_starting_it_through_its_api(tmp_path):
    from botwatch.remediator.intent.pauses import Scope
    stops, api, clock, told = watch(tmp_path)
    api.state_now = "paused"
    stops.look("ft")
    assert held(stops)
    stops.pauses.resume(Scope(bots=("ft",)), "ana")
    assert api.starts == 1 and api.state_now == "running" and held(stops) == []


def test_a_freqtrade_that_stopped_itself_after_an_error_is_told_as_such_and_not_started(tmp_path):
    stops, api, clock, told = watch(tmp_path, log=f"2026-12-02 ERROR - {SELF_STOP} ...")
    stops.look("ft")
    api.state_now = "stopped"
    stops.look("ft")
    [pause] = held(stops)
    assert pause.who == "Freqtrade itself" and "OperationalException" in pause.comment
    assert api.starts == 0 and "stopped by Freqtrade itself" in told[0]


def test_up_stopped_after_botwatchs_restart_while_it_ran_before_is_started_as_it_was(tmp_path):
    stops, api, clock, told = watch(tmp_path)
    stops.look("ft")                                  # seen running
    clock.now += 30
    stops.ledger.update_bot("ft", last_start_at=clock.now)    # crashed; botwatch restarted it
    api.state_now = "stopped"                         # its initial_state
    clock.now += 10
    stops.look("ft")
    assert api.starts == 1 and held(stops) == []
    assert any("as it was" in text for text in told)


def test_up_stopped_after_a_restart_with_nothing_seen_before_is_left_stopped(tmp_path):
    stops, api, clock, told = watch(tmp_path)
    stops.ledger.update_bot("ft", last_start_at=clock.now)
    api.state_now = "stopped"
    clock.now += 10
    stops.look("ft")
    assert api.starts == 0 and held(stops)            # unknown is the operator's: told, not acted on


def test_on_stopped_start_leaves_it_to_the_start_playbook(tmp_path):
    stops, api, clock, told = watch(tmp_path, on_stopped="start")
    stops.look("ft")
    api.state_now = "stopped"
    stops.look("ft")
    assert held(stops) == [] and told == [] and api.starts == 0


def test_a_stop_after_botwatchs_restart_came_up_running_is_the_operators(tmp_path):
    """Seen running, restarted by botwatch, up running (its initial_state) and seen so: a /stop after that is
    its operator's, not "came up stopped" — the look after the start is what counts."""
    stops, api, clock, told = watch(tmp_path)
    stops.look("ft")
    clock.now += 30
    stops.ledger.update_bot("ft", last_start_at=clock.now)
    clock.now += 10
    stops.look("ft")                                  # up running after the restart
    api.state_now = "stopped"                         # then its operator's /stop
    clock.now += 60
    stops.look("ft")
    assert api.starts == 0 and held(stops)


def test_systemctl_stop_is_deliberate_a_failed_unit_is_not():
    """systemd does not run here: `systemctl show` is stood in for (tests/botwatch/test_liveness.py's way)."""
    from botwatch.core.config import config_from_mapping
    from botwatch.remediator.intent.stops import deliberate_stop
    from botwatch.remediator.runtimes import SystemdRuntime
    from tests.botwatch.test_liveness import FakeSystemctl
    [bot] = config_from_mapping({"bots": [{"name": "u", "systemd_unit": "u.service", "data_file": "/tmp/u.csv"}]}).bots
    stopped = FakeSystemctl("ActiveState=inactive\nResult=success\n")
    assert "systemctl stop" in deliberate_stop(SystemdRuntime(bot, run=stopped))
    assert stopped.argv[-2:] == ["--", "u.service"]
    assert deliberate_stop(SystemdRuntime(bot, run=FakeSystemctl("ActiveState=failed\nResult=exit-code\n"))) is None
    assert deliberate_stop(SystemdRuntime(bot, run=FakeSystemctl("ActiveState=inactive\nResult=signal\n"))) is None
