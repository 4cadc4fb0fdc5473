"""Backups: only valid files, with a manifest; local folder and S3 (moto's server); retention; tampering."""

import hashlib
import time

import boto3
import pytest

from botwatch.core.config import config_from_mapping
from botwatch.remediator.restore.backup import LocalStore, Manifest, S3Store, backup_bot, newest_good, retention
from tests.conftest import wait_for
from tests.remediator.conftest import make_config

HEADER = "timestamp,trade_id,symbol,side,price,qty,fee\n"


def trades(n, start=0):
    return "".join(f"2026-06-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z,t{i},BTC/USDT,buy,100,1,0.1\n"
                   for i in range(start, start + n))


@pytest.fixture
def bot(tmp_path):
    (tmp_path / "t.csv").write_text(HEADER + trades(5))
    return make_config(tmp_path, [{"name": "saver", "pidfile": "s.pid", "data_file": "t.csv"}]).bots[0]


def test_a_valid_file_is_backed_up_with_its_manifest(tmp_path, bot):
    store = LocalStore(tmp_path / "backups")
    result = backup_bot(bot, store, clock=lambda: 1_800_000_000.0)
    assert result.outcome == "success"
    [manifest] = store.manifests("saver")
    data = (tmp_path / "backups" / "saver" / f"{manifest.name}.csv").read_bytes()
    assert data == (tmp_path / "t.csv").read_bytes()
    assert manifest.sha256 == hashlib.sha256(data).hexdigest() and manifest.size == len(data)
    assert (manifest.rows, manifest.first_id, manifest.last_id) == (5, "t0", "t4")
    assert manifest.first_ts == 1780272000.0 and manifest.last_ts == 1780272004.0
    assert manifest.created == 1_800_000_000.0


def test_a_row_being_written_is_left_out_of_the_snapshot(tmp_path, bot):
    with open(tmp_path / "t.csv", "a") as f:
        f.write("2026-06-01T00:09:00Z,t9,BTC/US")
    store = LocalStore(tmp_path / "backups")
    assert backup_bot(bot, store).outcome == "success"
    assert store.manifests("saver")[0].rows == 5


def test_an_invalid_file_is_not_backed_up(tmp_path, bot):
    with open(tmp_path / "t.csv", "a") as f:
        f.write("garbage\n")
    store = LocalStore(tmp_path / "backups")
    result = backup_bot(bot, store)
    assert result.outcome == "skipped" and "field_count" in result.detail
    assert store.manifests("saver") == []


def test_a_tampered_newest_backup_is_skipped_for_the_one_before(tmp_path, bot):
    store = LocalStore(tmp_path / "backups")
    backup_bot(bot, store, clock=lambda: 1_800_000_000.0)
    with open(tmp_path / "t.csv", "a") as f:
        f.write(trades(3, start=5))
    backup_bot(bot, store, clock=lambda: 1_800_003_600.0)
    older, newer = store.manifests("saver")
    path = tmp_path / "backups" / "saver" / f"{newer.name}.csv"
    path.write_bytes(path.read_bytes().replace(b"t6,", b"t9,"))          # same size, checksum differs
    manifest, data = next(newest_good(bot, store))
    assert manifest.name == older.name and data.count(b"\n") == 6


def test_retention_keeps_the_newest_hourly_and_one_per_day():
    day = 86400
    manifests = [Manifest("b", f"n{i}", "x", 1, 1, None, None, None, None, 1_800_000_000 + i * 3600)
                 for i in range(24 * 5)]          # five days of hourly backups
    doomed = {m.name for m in retention(manifests, keep_hourly=6, keep_daily=3)}
    kept = [m for m in manifests if m.name not in doomed]
    assert len(kept) == 6 + 2                      # 6 newest (today's), plus the newest of the 2 days before
    assert all(m.created >= manifests[-1].created - 3 * day for m in kept)


def test_s3_store_through_moto_server(tmp_path, bot, moto_s3, aws_env):
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="bw-backups")
    config = config_from_mapping({"backup": {"s3": {"bucket": "bw-backups", "prefix": "fleet", "endpoint_url": moto_s3}},
                                  "bots": [{"name": "saver", "pidfile": "s.pid", "data_file": "t.csv"}]},
                                 base=tmp_path)
    from botwatch.remediator.restore.backup import store_for
    store = store_for(config.backup)
    assert isinstance(store, S3Store)
    assert backup_bot(config.bots[0], store).outcome == "success"
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=moto_s3).list_objects_v2(Bucket="bw-backups")["Contents"]]
    assert len(keys) == 2 and all(k.startswith("fleet/saver/saver-") for k in keys)
    manifest, data = next(newest_good(config.bots[0], store))
    assert data == (tmp_path / "t.csv").read_bytes()
    store.delete(manifest)
    assert store.manifests("saver") == []


def test_an_unreachable_s3_is_a_clear_failure_and_a_count_not_a_crash(tmp_path, engine_factory, aws_env):
    from tests.conftest import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "t.csv").write_text(HEADER + trades(3))
    config = config_from_mapping({"backup": {"s3": {"bucket": "nope", "endpoint_url": dead}},
                                  "bots": [{"name": "saver", "pidfile": "s.pid", "data_file": "t.csv"}]},
                                 base=tmp_path)
    engine = engine_factory(config)
    [result] = engine.periodic.backup()
    assert result.outcome == "failed" and dead in result.detail
    assert engine.metrics.registry.get_sample_value("botwatch_backups_total", {"bot": "saver", "outcome": "failed"}) == 1
    assert "backup failed" in (tmp_path / "outbox.jsonl").read_text()
    assert "backup: failed" in (tmp_path / "data" / "memory" / "bot-operations.md").read_text()


def test_engine_backup_records_metrics_and_prunes(tmp_path, engine_factory):
    (tmp_path / "t.csv").write_text(HEADER + trades(3))
    config = config_from_mapping({"backup": {"dir": "bk", "keep_hourly": 2, "keep_daily": 0},
                                  "bots": [{"name": "saver", "pidfile": "s.pid", "data_file": "t.csv"}]},
                                 base=tmp_path)
    from tests.remediator.conftest import FakeClock
    clock = FakeClock()
    engine = engine_factory(config, clock=clock)
    for _ in range(4):
        engine.periodic.backup()
        clock.advance(3600)
    assert len(LocalStore(tmp_path / "bk").manifests("saver")) == 2
    get = engine.metrics.registry.get_sample_value
    assert get("botwatch_backups_total", {"bot": "saver", "outcome": "success"}) == 4
    assert get("botwatch_last_backup_timestamp_seconds", {"bot": "saver"}) > 1_800_000_000


def test_a_bot_with_no_backup_yet_is_tried_again_within_a_minute_not_an_hour(tmp_path, engine_factory):
    """A database that does not exist yet at the first round (a Freqtrade still starting) has nothing to be
    rebuilt from if it is damaged before the next hourly round: it is tried again every minute until backed up."""
    (tmp_path / "early.csv").write_text(HEADER + trades(3))
    config = config_from_mapping({"backup": {"dir": "bk"}, "bots": [
        {"name": "early", "pidfile": "e.pid", "data_file": "early.csv"},
        {"name": "late", "pidfile": "l.pid", "data_file": "late.csv"}]}, base=tmp_path)
    from tests.remediator.conftest import FakeClock
    clock = FakeClock()
    engine = engine_factory(config, clock=clock)
    store = LocalStore(tmp_path / "bk")
    engine.periodic.maybe_backup()                          # the first round: late.csv is not there
    wait_for(lambda: store.manifests("early"), what="the first round")
    (tmp_path / "late.csv").write_text(HEADER + trades(2))
    clock.advance(30)
    engine.periodic.maybe_backup()
    time.sleep(0.5)
    assert not store.manifests("late"), "too soon"
    clock.advance(31)
    engine.periodic.maybe_backup()
    wait_for(lambda: store.manifests("late"), what="the bot backed up a minute later")
    assert len(store.manifests("early")) == 1, "a retry is only for the bots still waiting"
    clock.advance(120)
    engine.periodic.maybe_backup()
    time.sleep(0.5)
    assert len(store.manifests("late")) == 1, "backed up: no more retries until the hourly round"
    log = (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    assert log.count("backup: skipped") == 1, "a skipped retry is not recorded each time"
