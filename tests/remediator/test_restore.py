"""Restore against a running paperbot: every corruption kind, crashes between steps, no backup, nothing at all."""

import json
import os
import time
from pathlib import Path

import pytest

from botwatch.core.checks import check_alive
from botwatch.core.tradefile import validate_file
from botwatch.remediator.restore.backup import LocalStore, backup_bot
from botwatch.remediator.restore.csvfile import STEPS, RestoreFailed, restore
from botwatch.remediator.runtimes import ProcessRuntime
from tests.conftest import kill_mentioning, kill_pidfile, wait_for
from tests.remediator.conftest import alert, client_for, make_config, payload, post

pytestmark = pytest.mark.slow


def journal_ids(bot) -> list[str]:
    return [json.loads(line)["trade_id"] for line in bot.journal.read_text().splitlines() if line.strip()]


def csv_ids(path: Path) -> list[str]:
    return [line.split(",")[1] for line in path.read_text().splitlines()[1:]]


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def middle_row_offset(path: Path) -> int:
    data = path.read_bytes()
    return data.index(b"\n", len(data) // 2) + 1


CORRUPTIONS = {
    "field_count": lambda p: p.open("a").write("2026-01-01T00:00:00Z,zz,ETH/USDT,buy\n"),
    "nul_bytes": lambda p: overwrite(p, middle_row_offset(p), b"\x00" * 64),
    "invalid_utf8": lambda p: p.open("ab").write(b"2026-11-25T00:00:00Z,\xff\xfe,ETH/USDT,buy,1,1,0\n"),
    "bad_number": lambda p: p.open("a").write("2099-01-01T00:00:00Z,zz1,ETH/USDT,buy,abc,1,0\n"),
    "non_positive": lambda p: p.open("a").write("2026-01-01T00:00:00Z,zz2,ETH/USDT,buy,-5,1,0\n"),
    "negative_fee": lambda p: p.open("a").write("2026-01-01T00:00:00Z,zz3,ETH/USDT,buy,5,1,-1\n"),
    "bad_side": lambda p: p.open("a").write("2026-01-01T00:00:00Z,zz4,ETH/USDT,hold,5,1,0\n"),
    "bad_timestamp": lambda p: p.open("a").write("yesterday,zz5,ETH/USDT,buy,5,1,0\n"),
    "timestamp_backwards": lambda p: p.open("a").write("2020-01-01T00:00:00Z,zz6,ETH/USDT,buy,5,1,0\n"),
    "timestamp_future": lambda p: p.open("a").write("2099-01-01T00:00:00Z,zz7,ETH/USDT,buy,5,1,0\n"),
    "duplicate_trade_id": lambda p: p.open("a").write(p.read_text().splitlines()[2] + "\n"),
    "header": lambda p: overwrite(p, 0, b"TIMESTAMP"),
    "shrunk": lambda p: os.truncate(p, middle_row_offset(p)),
    "rewritten": lambda p: overwrite(p, middle_row_offset(p) + 10, b"9"),
    "missing": lambda p: p.unlink(),
    "torn_row": lambda p: p.open("a").write("2026-11-25T00:00:00Z,zz8,ETH/US"),
}


@pytest.fixture
def trading(tmp_path, paperbots):
    """A paperbot trading fast, its config, a local backup store with one good backup of it."""
    bot = paperbots("keeper", trade_interval=0.02)
    wait_for(lambda: len(journal_ids(bot)) >= 15, what="15 fills")
    config = make_config(tmp_path, [bot.bot_config(check_interval=1)], verify_after="1s")
    store = LocalStore(tmp_path / "backups")
    assert backup_bot(config.bots[0], store).outcome == "success"
    wait_for(lambda: len(journal_ids(bot)) >= 30, what="15 more fills after the backup")
    yield bot, config, store
    kill_pidfile(bot.pidfile)


def run_restore(config, store, **kwargs):
    b = config.bots[0]
    runtime = ProcessRuntime(b, Path(kwargs.pop("output", "/tmp")))
    return restore(b, store, runtime, lambda: check_alive(b), verify_after=1.0, **kwargs)


def stop_and_compare(bot, tmp_path):
    kill_pidfile(bot.pidfile)
    ids = csv_ids(bot.csv)
    assert ids == journal_ids(bot), "the CSV must hold exactly the journal's trades, once each, in order"
    assert validate_file(bot.csv).valid
    return ids


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_corruption_is_restored_to_exactly_the_journals_trades(tmp_path, trading, kind):
    bot, config, store = trading
    before = bot.csv.read_bytes() if bot.csv.exists() else b""
    CORRUPTIONS[kind](bot.csv)
    corrupted = bot.csv.read_bytes() if bot.csv.exists() else None
    report = run_restore(config, store, output=tmp_path)
    assert report.backup and report.replayed > 0
    if corrupted is not None:
        assert report.quarantine.read_bytes().startswith(corrupted[:len(before) // 2])   # the evidence is kept
    count = len(journal_ids(bot))
    wait_for(lambda: len(journal_ids(bot)) > count + 3, what="the bot trading again after the restore")
    ids = stop_and_compare(bot, tmp_path)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("crash_after", STEPS[:-1])
def test_a_crash_between_any_two_steps_then_a_second_restore_loses_nothing(tmp_path, trading, crash_after):
    bot, config, store = trading
    CORRUPTIONS["nul_bytes"](bot.csv)

    class Crash(BaseException):
        pass

    def crash(step):
        if step == crash_after:
            raise Crash(step)

    with pytest.raises(Crash):
        run_restore(config, store, on_step=crash, output=tmp_path)
    assert bot.csv.exists() or list(tmp_path.glob("bots/keeper.csv.corrupt-*")), "old file or its quarantine"
    if bot.csv.exists():
        status = validate_file(bot.csv)   # either the corrupt original or the complete new file, never half
        assert not status.valid or csv_ids(bot.csv) == journal_ids(bot)[:len(csv_ids(bot.csv))]
    run_restore(config, store, output=tmp_path)
    quarantined = list((tmp_path / "bots").glob("keeper.csv.corrupt-*"))
    assert any(b"\x00" * 64 in q.read_bytes() for q in quarantined), "the corrupt copy survives both runs"
    stop_and_compare(bot, tmp_path)


def test_no_good_backup_rebuilds_the_whole_file_from_the_journal(tmp_path, paperbots):
    bot = paperbots("phoenix2", trade_interval=0.05)
    wait_for(lambda: len(journal_ids(bot)) >= 20, what="fills")
    config = make_config(tmp_path, [bot.bot_config()], verify_after="1s")
    CORRUPTIONS["header"](bot.csv)
    report = run_restore(config, LocalStore(tmp_path / "empty"), output=tmp_path)
    assert report.backup is None and report.from_backup == 0 and report.replayed >= 20
    stop_and_compare(bot, tmp_path)


def test_neither_backup_nor_journal_touches_nothing(tmp_path, paperbots):
    bot = paperbots("orphan", trade_interval=0.05)
    wait_for(lambda: bot.csv.exists() and len(csv_ids(bot.csv)) >= 5, what="fills")
    entry = bot.bot_config()
    entry.pop("journal")
    config = make_config(tmp_path, [entry])
    CORRUPTIONS["nul_bytes"](bot.csv)
    pid = bot.process.pid
    with pytest.raises(RestoreFailed, match="nothing touched"):
        run_restore(config, LocalStore(tmp_path / "empty"), output=tmp_path)
    assert bot.process.poll() is None and int(bot.pidfile.read_text()) == pid
    assert not list((tmp_path / "bots").glob("*.corrupt-*"))


def test_the_corruption_alert_runs_the_restore_playbook_end_to_end(tmp_path, trading, engine_factory, telegram):
    bot, config, store = trading
    config = make_config(tmp_path, [bot.bot_config(check_interval=1)], telegram_url=telegram.url, verify_after="1s")
    config = config.model_copy(update={"backup": config.backup.model_copy(update={"dir": tmp_path / "backups"})})
    engine = engine_factory(config)
    CORRUPTIONS["duplicate_trade_id"](bot.csv)
    post(client_for(engine), payload(alert("keeper", alertname="TradingBotDataCorrupted", notify="telegram")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "success", action.detail
    assert "replayed from journal" in action.detail
    assert "restored" in telegram.messages()[0]["text"]
    assert "keeper · TradingBotDataCorrupted → restore: success" in \
        (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    stop_and_compare(bot, tmp_path)


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_kill_9_of_botwatch_restore_at_any_moment_then_again_loses_nothing(tmp_path, delay):
    """A real `botwatch restore` killed with SIGKILL mid-way: old file or new, never half; the rerun finishes."""
    import signal as signals
    import subprocess
    from tests.conftest import BOTWATCH, ROOT, free_port
    bots = tmp_path / "bots"
    bots.mkdir()
    fills = [{"timestamp": f"2026-06-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
              "trade_id": f"k-{i:08d}", "symbol": "ETH/USDT", "side": "buy" if i % 2 else "sell",
              "price": "3000", "qty": "0.01", "fee": "0.03"} for i in range(80_000)]
    (bots / "k.jsonl").write_text("".join(json.dumps(f) + "\n" for f in fills))
    rows = "".join(",".join(f[c] for c in ("timestamp", "trade_id", "symbol", "side", "price", "qty", "fee")) + "\n"
                   for f in fills)
    original = ("timestamp,trade_id,symbol,side,price,qty,fee\n" + rows).encode()
    corrupt = original[:len(original) // 2] + b"\x00" * 64 + original[len(original) // 2 + 64:]
    (bots / "k.csv").write_bytes(corrupt)
    port = free_port()
    argv = BOTWATCH + ["paperbot", "--name", "k", "--data-file", str(bots / "k.csv"), "--journal", str(bots / "k.jsonl"),
                       "--health-port", str(port), "--pidfile", str(bots / "k.pid"), "--log-file", str(bots / "k.log"),
                       "--trade-interval", "60"]
    config = tmp_path / "bots.json"
    config.write_text(json.dumps({"remediation": {"verify_after": "1s"}, "backup": {"dir": str(tmp_path / "none")},
                                  "bots": [{"name": "k", "pidfile": str(bots / "k.pid"), "data_file": str(bots / "k.csv"),
                                            "journal": str(bots / "k.jsonl"), "start_command": argv,
                                            "health_endpoint": f"http://127.0.0.1:{port}/health"}]}))
    env = dict(os.environ, BOTWATCH_DATA_DIR=str(tmp_path / "state"))
    try:
        first = subprocess.Popen(BOTWATCH + ["restore", "--config", str(config), "k"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        first.send_signal(signals.SIGKILL)
        first.wait()
        quarantined = list(bots.glob("k.csv.corrupt-*"))
        if (bots / "k.csv").exists():
            now = (bots / "k.csv").read_bytes()
            assert now in (corrupt, original), "the data file is the old one or the new one, never half-written"
        else:
            assert quarantined, "no data file and no quarantine: the corrupt file was lost"
        again = subprocess.run(BOTWATCH + ["restore", "--config", str(config), "k"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert (bots / "k.csv").read_bytes().startswith(original)
        assert any(q.read_bytes() == corrupt for q in bots.glob("k.csv.corrupt-*")), "the corrupt copy is kept"
    finally:
        kill_pidfile(bots / "k.pid")
        kill_mentioning(str(bots))        # a restored bot still reading its journal has no pidfile yet


def test_a_restored_bot_slow_to_come_up_is_verified_by_polling_not_by_one_look(tmp_path, paperbots):
    """A bot that needs 4 s to come up after the restore (a long journal read at start) is up, not "restore
    failed": verification looks from verify_after until verify_within, and says how long it took."""
    bot = paperbots("slowpoke", trade_interval=0.02)
    wait_for(lambda: len(journal_ids(bot)) >= 15, what="15 fills")
    slow_start = ["sh", "-c", 'sleep 4; exec "$@"', "slow-start", *bot.argv]
    config = make_config(tmp_path, [bot.bot_config(check_interval=1, start_command=slow_start)], verify_after="1s")
    store = LocalStore(tmp_path / "backups")
    assert backup_bot(config.bots[0], store).outcome == "success"
    CORRUPTIONS["nul_bytes"](bot.csv)
    try:
        b = config.bots[0]
        report = restore(b, store, ProcessRuntime(b, tmp_path), lambda: check_alive(b), verify_after=1.0,
                         verify_within=30.0)
        waited = next(line for line in report.detail.split("; ") if line.startswith("bot up after"))
        assert float(waited.split()[-1].rstrip("s")) >= 3.5, report.detail
        stop_and_compare(bot, tmp_path)
    finally:
        kill_pidfile(bot.pidfile)
        kill_mentioning(str(bot.dir))
