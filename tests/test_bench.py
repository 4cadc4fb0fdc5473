"""Every benchmark still runs and prints its one JSON line (at toy sizes: the figures are `make bench`'s)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run_bench(name: str, **env) -> dict:
    result = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, **{k: str(v) for k, v in env.items()}})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout
    return lines[-1]


def test_datafile_bench():
    figures = run_bench("datafile", BENCH_ROWS=20_000)
    assert figures["rows"] == 20_000 and figures["pandas_read_csv_s"] > 0 and figures["no_change_bytes_read"] == 0


def test_exporter_scale_bench():
    figures = run_bench("exporter_scale", BENCH_BOTS=3, BENCH_ROWS=2_000, BENCH_SCRAPES=5, BENCH_SETTLE=5.5)
    assert figures["bots_resumed"] == 3 and figures["serialize_p50_ms"] > 0


def test_webhook_storm_bench():
    figures = run_bench("webhook_storm", BENCH_RATE=50, BENCH_SECONDS=1, BENCH_BOTS=3, BENCH_LEDGER="sqlite",
                        BENCH_RUNS=1, BENCH_WARMUP=10)
    assert figures["answers"] == {"200": 50} and figures["restarts_of_healthy_bots"] == 0


def test_mttr_bench():
    """At a toy size: the process part (two kills) and the safety part are the slow ones; the container
    parts need the private dockerd, which test_docker covers."""
    figures = run_bench("mttr", BENCH_MTTR_KILLS=2, BENCH_MTTR_BOTS=1, BENCH_MTTR_PARTS="process")
    assert figures["part"] == "process" and figures["kills"] == 2 and figures["restarts"] == 2
    assert figures["p95_s"] < 60, "restarted by the fast path, not after two 60 s checks"


def test_proc_scan_bench():
    assert run_bench("proc_scan", BENCH_BOTS=5)["scans_per_round_shared"] == 1


def test_freqtrade_db_bench(freqtrade_python):
    assert run_bench("freqtrade_db", BENCH_TRADES=2_000, BOTWATCH_FREQTRADE_VENV=os.path.dirname(
        os.path.dirname(freqtrade_python)))["valid"] is True


def test_a_bench_runs_from_a_checkout_without_a_venv_and_leaves_nothing_behind(tmp_path):
    """The benches named ROOT/.venv/bin/…: from a venv elsewhere (a checkout without .venv) the storm failed
    and left its `sleep 3600` child holding the caller's stdout open, so the caller hung. They now use the
    interpreter that runs them, and clean up on every exit path."""
    import shutil
    shutil.copytree(ROOT / "bench", tmp_path / "bench")
    result = subprocess.run([sys.executable, "-m", "bench.webhook_storm"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "BENCH_RATE": "50", "BENCH_SECONDS": "1",
                                                         "BENCH_BOTS": "3", "BENCH_LEDGER": "sqlite", "BENCH_RUNS": "1",
                                                         "BENCH_WARMUP": "10"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["bench"] == "webhook_storm"
