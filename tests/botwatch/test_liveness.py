import contextlib
import subprocess
import sys
import time

import pytest

from tests.conftest import wait_for

from botwatch.core.liveness import (ComposeProbe, DockerProbe, PidfileProbe, ProcessCmdlineProbe, ProcessNameProbe,
                                    ProcessTable, SystemdProbe)
from botwatch.up.demo import freqtrade_cmdline


def _sleeper(folder, name: str) -> subprocess.Popen:
    """A python script named NAME that sleeps, once it shows its own argv (between fork and exec the child
    still shows ours)."""
    script = folder / name
    script.write_text("import time; time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, str(script)])
    wait_for(lambda: name.encode() in open(f"/proc/{process.pid}/cmdline", "rb").read(), what="exec")
    return process


@pytest.fixture
def sleeper(tmp_path):
    process = _sleeper(tmp_path, "doge_long_bot")
    yield process
    process.kill()
    process.wait()


def test_pidfile_of_a_live_process_then_of_a_killed_one(tmp_path, sleeper):
    pidfile = tmp_path / "bot.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    probe = PidfileProbe(pidfile)
    assert probe().up and probe().pid == sleeper.pid
    sleeper.kill()
    time.sleep(0.2)                 # not reaped yet: a zombie is not alive
    result = probe()
    assert not result.up and "zombie" in result.detail
    sleeper.wait()
    assert not probe().up and "gone" in probe().detail


@pytest.mark.parametrize("content", [None, "", "not-a-pid", "999999999"])
def test_pidfile_missing_or_nonsense_is_down_not_an_exception(tmp_path, content):
    pidfile = tmp_path / "bot.pid"
    if content is not None:
        pidfile.write_text(content)
    assert not PidfileProbe(pidfile)().up


def test_process_name_matches_a_scripts_name_not_a_prefix(tmp_path):
    script = tmp_path / "doge_long_bot.py"
    script.write_text("import time; time.sleep(60)\n")
    with _running([sys.executable, "-u", str(script), "--pair", "DOGE/USDT"]) as bot:
        for name in ("doge_long_bot", "doge_long_bot.py", str(script)):
            assert ProcessNameProbe(name)().pid == bot.pid, name
        assert not ProcessNameProbe("doge_long")().up      # no prefix matches
        assert not ProcessNameProbe("DOGE/USDT")().up      # nor an argument


def test_process_name_is_not_fooled_by_a_tail_or_grep_of_the_name_beside_a_dead_bot(tmp_path):
    """`tail -f …/doge_long_bot.log` and `grep doge_long_bot` name the bot in their arguments: the bot is
    still down (before: "process 'doge_long_bot' is pid <tail>", and a restart would have killed the tail)."""
    log, named = tmp_path / "doge_long_bot.log", tmp_path / "doge_long_bot"
    log.write_text("")
    named.write_text("")
    with _running(["tail", "-f", str(log)]), _running(["tail", "-f", str(named)]), \
            _running(["grep", "doge_long_bot"], stdin=subprocess.PIPE):
        result = ProcessNameProbe("doge_long_bot")()
        assert not result.up and result.pid is None, result.detail
        assert not ProcessNameProbe(str(named))().up


def test_process_cmdline_matches_the_whole_command_line_when_configured(tmp_path):
    config = tmp_path / "ft-config.json"
    config.write_text("{}")
    fake = tmp_path / "freqtrade"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    pattern = freqtrade_cmdline(config)
    with _running(["tail", "-f", str(config)]):
        assert not ProcessCmdlineProbe(pattern)().up                  # the file named, not the bot
        with _running([sys.executable, "-c", "import time; time.sleep(60)", str(fake), "trade", "--config",
                       str(config)], marker=b"trade") as bot:
            result = ProcessCmdlineProbe(pattern)()
            assert result.up and result.pid == bot.pid, result.detail


@contextlib.contextmanager
def _running(argv, marker: bytes | None = None, **kwargs):
    """A process for the length of the block, waited for until it shows its own argv, killed after."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    want = marker or argv[-1].encode()
    try:
        wait_for(lambda: want in open(f"/proc/{process.pid}/cmdline", "rb").read(), what=f"exec of {argv[0]}")
        yield process
    finally:
        process.kill()
        process.wait()


def test_process_name_matches_comm(sleeper):
    with open(f"/proc/{sleeper.pid}/comm") as f:
        comm = f.read().strip()
    result = ProcessNameProbe(comm)()
    assert result.up


def test_probes_of_one_round_share_one_scan_of_proc(sleeper, tmp_path):
    table = ProcessTable(rounds=True)
    probes = [ProcessNameProbe(name, table=table) for name in ["doge_long_bot"] + [f"absent-{i}" for i in range(50)]]
    table.new_round()
    results = [probe() for probe in probes]
    assert results[0].up and results[0].pid == sleeper.pid and not any(r.up for r in results[1:])
    assert table.scans == 1
    sleeper.kill()
    sleeper.wait()
    assert not probes[0]().up, "a pid from the round's scan is confirmed alive at lookup"
    assert table.scans == 1
    started = _sleeper(tmp_path, "absent-7")
    try:
        assert not probes[8]().up, "within a round the table is not rescanned"
        table.new_round()
        assert probes[8]().up and table.scans == 2, "the next round sees the new process"
    finally:
        started.kill()
        started.wait()


def test_a_probe_on_its_own_scans_at_every_call(sleeper, tmp_path):
    probe = ProcessNameProbe("late_bot")
    assert not probe().up
    late = _sleeper(tmp_path, "late_bot")
    try:
        wait_for(lambda: probe().up, what="the new process seen by the next call")
    finally:
        late.kill()
        late.wait()


def test_docker_daemon_away_is_an_error_not_a_crash(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for probe in (DockerProbe("doge-long"), ComposeProbe("doge-long", "bots")):
        result = probe()
        assert not result.up and result.error


class FakeSystemctl:
    """systemd does not run here: this stands in for `systemctl show`, checking the argv it is given."""

    def __init__(self, stdout, returncode=0):
        self.stdout, self.returncode, self.argv = stdout, returncode, None

    def __call__(self, argv, **kwargs):
        self.argv = argv
        return subprocess.CompletedProcess(argv, self.returncode, self.stdout, "Unit not found.")


def test_systemd_unit_states():
    active = FakeSystemctl("ActiveState=active\nSubState=running\nMainPID=1234\n")
    result = SystemdProbe("doge-long.service", run=active)()
    assert result.up and result.pid == 1234
    assert active.argv[-2:] == ["--", "doge-long.service"]   # a unit name can't pose as an option
    failed = SystemdProbe("doge-long.service", run=FakeSystemctl("ActiveState=failed\nSubState=failed\nMainPID=0\n"))()
    assert not failed.up and not failed.error and "failed" in failed.detail
    broken = SystemdProbe("x.service", run=FakeSystemctl("", returncode=1))()
    assert not broken.up and broken.error


def test_systemctl_missing_is_an_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = SystemdProbe("doge-long.service")()
    assert not result.up and result.error
