"""Exporter checkpoints: a restart resumes where the file was validated, with the figures a full read
gives; a damaged, foreign or outdated checkpoint is ignored; kill -9 at any moment loses nothing."""

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from botwatch.core.config import load_config
from botwatch.core.stores.csv_store import CsvStore
from botwatch.exporter.checkpoints import Checkpoints
from tests.botwatch.test_tradefile import HEADER, NOW, row
from tests.conftest import http_get, parse_metrics, sample, wait_for, write_config


def rows(start: int, count: int) -> str:
    return "".join(row(i, side="buy" if i % 3 else "sell", price=f"{100 + i % 13}.5", qty=f"0.{1 + i % 7}",
                       symbol=("BTC/USDT", "ETH/USDT")[i % 2]) for i in range(start, start + count))


def bot_config(tmp_path: Path, data_file: Path, **extra) -> Path:
    return write_config(tmp_path / "bots.json", [{"name": "b1", "pidfile": str(tmp_path / "b1.pid"),
                                                 "check_interval": 0.5, "data_file": str(data_file), **extra}])


def figures(store: CsvStore) -> tuple:
    status = store.collect()
    summary = store.summary()
    return (status.valid, status.rows, status.trades, status.last_trade_ts, dict(status.problems),
            summary.realized, summary.unrealized, summary.positions)


def fresh(bot) -> tuple:
    return figures(CsvStore(bot, clock=lambda: NOW))


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "trades.csv"
    data.write_text(HEADER + rows(0, 3000))
    bot = load_config(bot_config(tmp_path, data)).bots[0]
    return bot, data, Checkpoints(tmp_path / "state")


def resumed_store(bot, checkpoints) -> tuple[CsvStore, bool]:
    store = CsvStore(bot, clock=lambda: NOW)
    return store, checkpoints.load(bot, store)


def test_a_restart_resumes_at_the_validated_offset_with_the_same_figures(setup):
    bot, data, checkpoints = setup
    store = CsvStore(bot, clock=lambda: NOW)
    store.collect()
    assert checkpoints.save(bot, store, force=True)
    with open(data, "a") as f:
        f.write(rows(3000, 500))
    again, resumed = resumed_store(bot, checkpoints)
    assert resumed
    assert figures(again) == fresh(bot)
    assert again.check.bytes_read == len(rows(3000, 500).encode())      # only the appended bytes were read


def test_a_corrupt_file_resumes_corrupt_with_its_counts(setup):
    bot, data, checkpoints = setup
    with open(data, "a") as f:
        f.write(row(5000, trade_id="t7") + rows(3000, 10))          # a duplicate id
    store = CsvStore(bot, clock=lambda: NOW)
    assert not store.collect().valid
    checkpoints.save(bot, store, force=True)
    again, resumed = resumed_store(bot, checkpoints)
    assert resumed and figures(again) == fresh(bot) and not figures(again)[0]


def damage_checksum(state: Path) -> None:
    path = state / "b1" / "checkpoint.json"
    outer = json.loads(path.read_text())
    outer["body"] = outer["body"].replace('"rows": 3000', '"rows": 2999')
    path.write_text(json.dumps(outer))


def forge_rows(state: Path) -> None:
    """A consistent checksum over a lie: the file's identity is what must catch this one."""
    import hashlib
    path = state / "b1" / "checkpoint.json"
    body = json.loads(json.loads(path.read_text())["body"])
    body["data_file"] = "/elsewhere/trades.csv"
    text = json.dumps(body, sort_keys=True)
    path.write_text(json.dumps({"checksum": hashlib.blake2b(text.encode(), digest_size=16).hexdigest(), "body": text}))


def replace_file(data: Path) -> None:
    """The same bytes under a new inode, as an atomic rename leaves them."""
    copy = data.with_suffix(".new")
    copy.write_bytes(data.read_bytes())
    os.replace(copy, data)


def damage_generation(state: Path) -> None:
    generation = sorted((state / "b1").glob("ids-*.u64"))[0]
    data = bytearray(generation.read_bytes())
    data[5] ^= 0xFF
    generation.write_bytes(bytes(data))


@pytest.mark.parametrize("spoil", [
    lambda state, data: (state / "b1" / "checkpoint.json").write_bytes(b"\x00" * 100),
    lambda state, data: (state / "b1" / "checkpoint.json").write_text("{}"),
    lambda state, data: (state / "b1" / "checkpoint.json").write_text('{"checksum": 1, "body": [NaN]}'),
    lambda state, data: (state / "b1" / "checkpoint.json").write_bytes(
        (state / "b1" / "checkpoint.json").read_bytes()[:-40]),
    lambda state, data: damage_checksum(state),
    lambda state, data: forge_rows(state),
    lambda state, data: damage_generation(state),
    lambda state, data: sorted((state / "b1").glob("ids-*.u64"))[0].unlink(),
    # the file is not the one the checkpoint describes
    lambda state, data: replace_file(data),                                                   # a new inode
    lambda state, data: open(data, "r+b").write(b"2026"),                                    # rewritten in place
    lambda state, data: os.truncate(data, 1000),                                             # shrunk
    lambda state, data: (data.write_bytes(data.read_bytes()[:-4000] + rows(9000, 5).encode())),
], ids=["zeros", "empty-object", "nan", "torn", "checksum", "foreign-file", "generation-damaged",
        "generation-missing", "replaced", "rewritten", "shrunk", "tail-rewritten"])
def test_a_checkpoint_that_does_not_check_out_is_ignored(setup, spoil):
    bot, data, checkpoints = setup
    store = CsvStore(bot, clock=lambda: NOW)
    store.collect()
    checkpoints.save(bot, store, force=True)
    spoil(checkpoints.dir, data)
    again, resumed = resumed_store(bot, checkpoints)
    assert not resumed
    assert figures(again) == fresh(bot)


def test_another_bots_or_another_configs_checkpoint_is_ignored(setup, tmp_path):
    bot, data, checkpoints = setup
    store = CsvStore(bot, clock=lambda: NOW)
    store.collect()
    checkpoints.save(bot, store, force=True)
    other = load_config(bot_config(tmp_path, data, starting_balance=500)).bots[0]
    assert not checkpoints.load(other, CsvStore(other, clock=lambda: NOW))
    window = load_config(bot_config(tmp_path, data, data_format={"dedup_window": 10})).bots[0]
    assert not checkpoints.load(window, CsvStore(window, clock=lambda: NOW))


def test_sealed_generations_are_written_once_and_pruned(setup):
    bot, data, checkpoints = setup
    store = CsvStore(bot, clock=lambda: NOW)
    store.collect()
    checkpoints.save(bot, store, force=True)
    before = {p.name: p.stat().st_mtime_ns for p in (checkpoints.dir / "b1").glob("ids-*.u64")}
    assert len(before) == len(store.check.window.sealed)
    with open(data, "a") as f:
        f.write(rows(3000, 80_000))
    store.collect()
    checkpoints.save(bot, store, force=True)
    after = {p.name for p in (checkpoints.dir / "b1").glob("ids-*.u64")}
    assert len(after) == len(store.check.window.sealed) <= 34
    assert not set(before) & after or all(
        (checkpoints.dir / "b1" / name).stat().st_mtime_ns == before[name] for name in set(before) & after)


# -- the real exporter, killed at random moments -------------------------------------------------------

def exporter_figures(url: str) -> tuple | None:
    metrics = parse_metrics(http_get(url).decode())
    rows_now = sample(metrics, "tradingbot_data_file_rows", bot="b1")
    if rows_now is None:
        return None
    positions = {dict(labels)["symbol"]: value for (name, labels), value in metrics.items()
                 if name == "tradingbot_position" and dict(labels).get("bot") == "b1"}
    problems = {dict(labels)["check"]: int(value) for (name, labels), value in metrics.items()
                if name == "tradingbot_data_file_problems" and dict(labels).get("bot") == "b1"}
    return (sample(metrics, "tradingbot_data_file_valid", bot="b1") == 1, int(rows_now),
            int(sample(metrics, "tradingbot_trades_total", bot="b1")),
            sample(metrics, "tradingbot_last_trade_timestamp_seconds", bot="b1"), problems,
            sample(metrics, "tradingbot_realized_pnl", bot="b1"), positions)


def expected_figures(bot) -> tuple:
    store = CsvStore(bot)
    status = store.collect()
    summary = store.summary()
    return (status.valid, status.rows, status.trades, status.last_trade_ts, dict(status.problems),
            summary.realized, {s: q for s, q in summary.positions.items()})


@pytest.mark.slow
def test_kill_9_at_any_moment_then_the_figures_equal_a_full_read(tmp_path, exporter_process):
    """Each round: the file grows (now and then with a bad row) while the exporter runs; kill -9 at a random
    moment (loading, reading, saving); restart; once it has caught up, its figures equal a fresh full read."""
    rng = random.Random(13)
    data = tmp_path / "trades.csv"
    data.write_text(HEADER + rows(0, 150_000))
    config = bot_config(tmp_path, data)
    bot = load_config(config).bots[0]
    state = tmp_path / "exporter-state"
    written, resumes = 150_000, 0
    for round_no in range(10):
        url = exporter_process(config)
        process = exporter_process.processes[-1]
        deadline = time.monotonic() + rng.uniform(0.0, 2.5)
        while time.monotonic() < deadline:                  # the bot keeps trading while the exporter runs
            with open(data, "a") as f:
                extra = rng.randrange(1, 3000)
                f.write(rows(written, extra))
                written += extra
                if rng.random() < 0.05:
                    f.write(row(written, trade_id=f"t{written - 5}"))    # a duplicate: corrupt from here on
                    written += 1
            time.sleep(rng.uniform(0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()

        url = exporter_process(config)
        expected = expected_figures(bot)
        wait_for(lambda: exporter_figures(url) and exporter_figures(url)[1] == expected[1], timeout=60,
                 what=f"round {round_no}: the exporter caught up with {expected[1]} rows")
        assert exporter_figures(url) == expected, f"round {round_no}"
        exporter_process.processes[-1].terminate()
        exporter_process.processes[-1].wait()
        resumes = (tmp_path / "exporter.log").read_text().count("resumed from the checkpoint")
    assert resumes >= 5, "most restarts resumed from a checkpoint"
    assert len(list((state / "b1").glob(".*.tmp"))) <= 1

