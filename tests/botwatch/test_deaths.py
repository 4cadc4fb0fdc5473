"""Death as an event: a pidfd tells the end of a process at once, re-armed with each new pid; docker's event
stream tells a container's `die`, but not one its operator (or botwatch) stopped or killed through the API."""

import queue
import signal
import subprocess
import time

import pytest

from botwatch.core.config import Bot
from botwatch.core.deaths import ContainerWatch, Death, PidWatch, pidfd_supported
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(not pidfd_supported(), reason="this kernel has no pidfd")


@pytest.fixture
def watch():
    told: queue.Queue[Death] = queue.Queue()
    pids = PidWatch(told.put)
    pids.start()
    yield pids, told
    pids.stop()


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "600"])


def test_the_end_of_a_watched_process_is_told_at_once_not_at_the_next_poll(watch):
    pids, told = watch
    process = sleeper()
    pids.watch("bot-a", process.pid)
    with pytest.raises(queue.Empty):
        told.get(timeout=0.3)                # alive: nothing said
    killed = time.time()
    process.send_signal(signal.SIGKILL)
    death = told.get(timeout=30)
    assert death.bot == "bot-a" and death.pid == process.pid and "ended" in death.detail
    assert death.at >= killed
    assert pids.watched("bot-a") is None
    process.wait()


def test_rearmed_with_the_new_pid_and_the_old_one_never_told_twice(watch):
    pids, told = watch
    first, second = sleeper(), sleeper()
    pids.watch("bot-a", first.pid)
    pids.watch("bot-a", second.pid)          # a restart: the check found a new pid
    first.kill()
    first.wait()
    with pytest.raises(queue.Empty):
        told.get(timeout=0.5)                # the old pid is no longer this bot's
    second.kill()
    assert told.get(timeout=5).pid == second.pid
    pids.watch("bot-a", second.pid)          # a late check still naming the dead pid: not a second death
    with pytest.raises(queue.Empty):
        told.get(timeout=0.5)
    second.wait()


def test_a_pid_gone_before_it_is_armed_is_a_death_at_once(watch):
    pids, told = watch
    process = sleeper()
    process.kill()
    process.wait()                           # reaped: no such process any more
    pids.watch("bot-a", process.pid)
    assert told.get(timeout=5).bot == "bot-a"


def test_disarmed_while_down_and_many_bots_each_told_their_own(watch):
    pids, told = watch
    processes = {f"bot-{i}": sleeper() for i in range(5)}
    for name, process in processes.items():
        pids.watch(name, process.pid)
    pids.watch("bot-0", None)                # the check found it down: nothing to watch
    for process in processes.values():
        process.kill()
    deaths = {told.get(timeout=5).bot for _ in range(4)}
    assert deaths == {"bot-1", "bot-2", "bot-3", "bot-4"}
    with pytest.raises(queue.Empty):
        told.get(timeout=0.5)
    for process in processes.values():
        process.wait()


def event(action: str, name: str = "bot-c", cid: str = "c1", at: float = 100.0, **attributes) -> dict:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": {"name": name, **attributes}},
            "time": int(at), "timeNano": int(at * 1e9)}


@pytest.fixture
def containers():
    bots = [Bot(name="bot-c", container="bot-c", data_file="x.csv"),
            Bot(name="bot-s", compose_service="trader", compose_project="desk", data_file="y.csv")]
    return ContainerWatch(bots, lambda death: None)


def test_a_container_that_dies_on_its_own_is_a_death(containers):
    death = containers.handle(event("die", exitCode="137"))
    assert death == Death("bot-c", 100.0, "container bot-c exited with code 137")
    assert containers.handle(event("oom", at=101.0)).detail == "container bot-c was OOM-killed"


def test_a_die_after_an_api_kill_or_stop_is_its_operators_not_a_death(containers):
    assert containers.handle(event("kill", signal="15")) is None
    assert containers.handle(event("die", at=100.5)) is None          # docker stop: kill, die, stop
    assert containers.handle(event("stop", at=100.6)) is None
    assert containers.handle(event("start", at=200.0)) is None        # started again: the next die is a death
    assert containers.handle(event("die", at=300.0)) is not None


def test_compose_services_by_their_labels_and_strangers_ignored(containers):
    labels = {"com.docker.compose.service": "trader", "com.docker.compose.project": "desk"}
    assert containers.handle(event("die", name="desk-trader-1", cid="c2", **labels)).bot == "bot-s"
    other = {"com.docker.compose.service": "trader", "com.docker.compose.project": "elsewhere"}
    assert containers.handle(event("die", name="elsewhere-trader-1", cid="c3", **other)) is None
    assert containers.handle(event("die", name="someone-else", cid="c4")) is None
