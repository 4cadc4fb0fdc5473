"""botwatch as a user installs it: the built wheel in a fresh venv, run from an empty folder, far from any
checkout, brings a killed demo bot back (the whole loop: exporter → Prometheus → Alertmanager → remediator)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from botwatch.core.liveness import process_alive
from tests.conftest import ROOT, http_get, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding botwatch from its wheel and nothing of this checkout; its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools' build/ folder in a checkout can hold files the source no longer has
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "var", "__pycache__", ".pytest_cache", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(source)],
                   check=True, cwd=base, timeout=600)
    [wheel] = (base / "dist").glob("botwatch-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=120)
    subprocess.run([str(base / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, cwd=base, timeout=900)
    return base / "venv" / "bin"


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def test_the_wheel_carries_what_botwatch_reads_at_run_time(installed, tmp_path):
    code = ("import botwatch, botwatch.resources as r; print(botwatch.__file__); "
            "print(r.path('alertmanager', 'templates', 'telegram.tmpl')); print(r.path('prometheus', 'rules')); "
            "print(r.path('runbook.md'))")
    where = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(str(installed.parent) in line and str(ROOT) not in line for line in where), where
    (tmp_path / "bots.yaml").write_text("bots: [{name: a, pidfile: a.pid, data_file: a.csv}]\n")
    (tmp_path / "hook").write_text("secret\n")
    rendered = subprocess.run([str(installed / "botwatch"), "render-alertmanager", "--config", "bots.yaml",
                               "--webhook-token-file", "hook", "--out", "-"], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    assert "telegram.tmpl" not in rendered.stdout and "templates/*.tmpl" in rendered.stdout


def test_botwatch_up_from_the_wheel_restarts_a_killed_bot(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    up = subprocess.Popen([str(installed / "botwatch"), "up", "--timings", "fast", "--state-dir", "state"],
                          cwd=empty, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        stack = wait_for(lambda: json.loads((empty / "state" / "stack.json").read_text()), timeout=120,
                         what="stack.json")
        pidfile = Path(stack["bots"]["doge-long"]["pidfile"])
        killed = wait_for(lambda: int(pidfile.read_text()), what="the bot's pid")
        os.kill(killed, signal.SIGKILL)
        restarted = wait_for(lambda: (pid := int(pidfile.read_text())) != killed and process_alive(pid) and pid,
                             timeout=90, what="the killed bot to be restarted")
        assert restarted != killed
        wait_for(lambda: 'botwatch_bot_restarts_total{bot="doge-long"} 1.0'
                 in http_get(stack["remediator"] + "/metrics").decode(), what="the remediator to count the restart")
    finally:
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
