"""Replaying the fill mirror into a restored Freqtrade backup, on databases and API records that Freqtrade's
own code wrote (Trade.to_json is what /api/v1/trades and /api/v1/status return)."""

import json
import shutil

import pytest

from botwatch.core.stores.freqtrade_db import FreqtradeStore
from botwatch.remediator.restore.freqtrade import replay
from botwatch.remediator.restore.backup_sqlite import integrity_problem


def test_the_backup_plus_the_mirror_is_the_database_freqtrade_had(freqtrade_db, tmp_path):
    # the same seed writes the same first trades: the backup is the full history cut after 10 trades,
    # two of them still open then and closed since
    backup, _ = freqtrade_db("backup.sqlite", "--closed", "10", "--open", "2", "--seed", "5")
    full, truth = freqtrade_db("full.sqlite", "--closed", "10", "--open", "2", "--seed", "5", "--partial",
                               "--json", str(tmp_path / "api.json"))
    api = json.loads((tmp_path / "api.json").read_text())
    restored = tmp_path / "restored.sqlite"
    shutil.copy(backup, restored)
    had, replayed, reopened = replay(restored, api["closed"], api["open"])
    assert (had, replayed, reopened) == (12, 0, 2)      # the partial exit changed both open trades' records
    assert integrity_problem(restored) is None
    mine, theirs = FreqtradeStore(restored), FreqtradeStore(full)
    assert mine.collect().valid and theirs.collect().valid
    assert mine.summary().realized == pytest.approx(theirs.summary().realized, abs=1e-9)
    assert mine.summary().positions == theirs.summary().positions
    assert mine.summary().trades == truth["fills"]


def test_trades_closed_after_the_backup_are_closed_in_the_restore(freqtrade_db, tmp_path):
    live, _ = freqtrade_db("live.sqlite", "--closed", "5", "--open", "3", "--seed", "7")
    restored = tmp_path / "restored.sqlite"
    shutil.copy(live, restored)                          # the backup: 5 closed, 3 open
    # the bot trades on: closes the 3, then 4 more closed and 1 open
    full, truth = freqtrade_db("live.sqlite", "--closed", "4", "--open", "1", "--seed", "8", "--close-open",
                               "--json", str(tmp_path / "api.json"))
    api = json.loads((tmp_path / "api.json").read_text())
    _, replayed, reopened = replay(restored, api["closed"], api["open"])
    assert replayed == 7 and reopened == 1
    store = FreqtradeStore(restored)
    assert store.collect().valid and store.collect().rows == 13
    assert store.summary().realized == pytest.approx(truth["closed_profit"] + truth["open_realized"], abs=1e-9)
    assert {p: round(a, 8) for p, a in store.summary().positions.items() if a} == truth["positions"]
