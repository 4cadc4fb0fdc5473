"""The chaos soak: two minutes of it in `make test` (`make chaos` runs it long), and its score itself.

The soak's promises are the remediator's: every fault healed, no trade lost or duplicated, no restart
more than a fault needs and none of a healthy bot, no 5xx from the webhook."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.soak import BOT_KINDS, SERVICE_KINDS, Fault, Soak
from tests.conftest import FREQTRADE_VENV, ROOT


def files(soak: Soak, name: str, journal: list[str], rows: list[str], starts: list[float]) -> None:
    bot = soak.bots[name]
    fill = lambda tid, n: {"timestamp": f"2026-01-01T08:00:{n:02d}.000Z", "trade_id": tid, "symbol": "ETH/USDT",
                           "side": "buy", "price": "100", "qty": "1", "fee": "0.1"}
    Path(bot["journal"]).write_text("".join(json.dumps(fill(tid, n)) + "\n" for n, tid in enumerate(journal)))
    Path(bot["data_file"]).write_text("timestamp,trade_id,symbol,side,price,qty,fee\n" + "".join(
        ",".join(fill(tid, n).values()) + "\n" for n, tid in enumerate(rows)))
    Path(soak._mark(name, "starts")).write_text("".join(f"{t}\n" for t in starts))


def soak_of_two(tmp_path: Path) -> Soak:
    soak = Soak(tmp_path / "work", seed=1, duration=60, bots=2, gap=5, ha=False)
    soak.restart_s = {"chaos-0": 0.1, "chaos-1": 0.1}
    soak.baseline = {"chaos-0": 1, "chaos-1": 1}          # the stack's own first start of each
    return soak


def test_a_clean_run_scores_ok(tmp_path):
    soak = soak_of_two(tmp_path)
    files(soak, "chaos-0", ["a1", "a2", "a3"], ["a1", "a2", "a3"], [100.0, 205.0])
    files(soak, "chaos-1", ["b1"], ["b1"], [100.0])
    soak.faults = [Fault("bot-kill", "chaos-0", 200.0, healed=210.0, expected_starts=1),
                   Fault("auth-errors", "chaos-1", 300.0, healed=301.0)]
    result = soak.score(exit_code=0)
    assert result["ok"], result
    assert result["restarts"] == {"total": 1, "expected": 1, "duplicate": 0, "spurious": 0, "odd": []}
    assert result["recovery_s"]["bot-kill"] == {"n": 1, "p50": 10.0, "p95": 10.0, "max": 10.0}


def test_the_score_counts_every_kind_of_failure(tmp_path):
    soak = soak_of_two(tmp_path)
    # chaos-0: a fill lost from the file and another written twice; two starts for one kill
    files(soak, "chaos-0", ["a1", "a2", "a3"], ["a1", "a1", "a2"], [100.0, 205.0, 206.0])
    # chaos-1: started with no fault to explain it, then frozen and never healed
    files(soak, "chaos-1", ["b1"], ["b1"], [100.0, 300.0])
    soak.faults = [Fault("bot-kill", "chaos-0", 200.0, healed=210.0, expected_starts=1),
                   Fault("bot-stop", "chaos-1", 400.0, expected_starts=1)]
    soak.http_5xx = 2
    result = soak.score(exit_code=0)
    assert not result["ok"]
    restarts = result["restarts"]
    assert (restarts["total"], restarts["expected"], restarts["duplicate"], restarts["spurious"]) == (3, 2, 1, 1)
    assert result["trades"]["at_end"] == {"lost": 1, "duplicated": 1, "invalid_files": ["chaos-0"]}
    assert [f["kind"] for f in result["faults"]["unhealed"]] == ["bot-stop"]
    assert result["http_5xx"] == 2
    assert not soak_of_two(tmp_path / "again").score(exit_code=None)["ok"], "a stack that died is not ok"


@pytest.mark.slow
def test_two_minutes_of_chaos_heal_everything_and_lose_nothing(freqtrade_python):
    run = subprocess.run([sys.executable, "-m", "chaos.soak", "--duration", "2m", "--seed", "1",
                          "--with-freqtrade", str(FREQTRADE_VENV / "bin" / "freqtrade")], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.stdout.strip(), run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    why = json.dumps(result, indent=1) + "\n" + run.stderr[-3000:]
    faults = result["faults"]
    assert faults["unhealed"] == [] and faults["healed"] == faults["injected"], why
    assert {kind for kind, n in faults["by_kind"].items() if n} == set(BOT_KINDS + SERVICE_KINDS), why
    assert faults["remediator_killed_mid_playbook"] >= 1, why
    assert result["trades"]["lost"] == 0 and result["trades"]["duplicated"] == 0, why
    assert result["trades"]["restores_checked"] >= 1 and result["trades"]["at_end"]["invalid_files"] == [], why
    assert result["restarts"]["duplicate"] == 0 and result["restarts"]["spurious"] == 0, why
    assert result["http_5xx"] == 0 and result["stack_exit"] == 0, why
    assert result["ok"] and run.returncode == 0, why
