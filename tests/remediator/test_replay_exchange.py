"""Replay from the exchange: a restore whose journal or mirror is lost asks the (local, signed, Binance-shaped)
exchange through the real ccxt for the fills since the backup, over pages and 24-hour windows."""

import csv
import json
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal

import pytest

from botwatch.core.config import config_from_mapping
from botwatch.core.stores.hummingbot_db import HummingbotStore
from botwatch.core.tradefile import validate_file
from botwatch.up.standins.localexchange import LocalExchange
from botwatch.remediator.restore.backup import LocalStore, backup_bot
from botwatch.remediator.restore.mirror_hummingbot import LogFillMirror
from botwatch.remediator.restore.csvfile import restore
from botwatch.remediator.restore.sqlite import restore_database
from botwatch.remediator.restore.hummingbot import hummingbot_fill_in
from tests.fixtures.hummingbot_db import Fill, HummingbotFiles

HOUR = 3600
FILLS = 4000                 # over the last 50 hours: more than two 24-hour windows, pages of 1000
SPOT = {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}


@dataclass
class Alive:
    up: bool = True
    detail: str = ""
    pid: int | None = 1


class Runtime:
    """Stands in for the bot's runtime: the restore's stop/start are recorded (real ones: test_restore.py)."""

    def __init__(self):
        self.calls = []

    def stop(self):
        self.calls.append("stop")

    def start(self):
        self.calls.append("start")


@pytest.fixture
def exchange():
    exchange = LocalExchange()
    now = int(time.time() * 1000)
    start = now - 50 * HOUR * 1000
    for i in range(FILLS):
        symbol = "BTCUSDT" if i % 3 else "ETHUSDT"
        price = 30000 + (i % 50) if symbol == "BTCUSDT" else 2000 + (i % 20)
        exchange.add_trade(symbol, start + i * (50 * HOUR * 1000 // FILLS), "buy" if i % 2 else "sell", price,
                           0.01, commission=price * 0.01 * 0.001)
    yield exchange
    exchange.close()


def config_for(tmp_path, exchange, bot: dict):
    (tmp_path / "exchange-key").write_text(f"{exchange.api_key}:{exchange.secret}\n")
    replay = {"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"], "credentials_file": "exchange-key",
              "api_url": exchange.url, "options": SPOT, "margin": "10m"}
    return config_from_mapping({"bots": [{**bot, "replay": replay}], "backup": {"dir": "backups"}},
                               base=tmp_path)


def account_ids(exchange, until_ms=None) -> list[str]:
    return [str(t["id"]) for t in exchange.trades if until_ms is None or t["time"] <= until_ms]


# -- a CSV bot ----------------------------------------------------------------------------------------------

def csv_row(trade) -> list[str]:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(trade["time"] / 1000)) + f".{trade['time'] % 1000:03d}Z"
    symbol = "BTC/USDT" if trade["symbol"] == "BTCUSDT" else "ETH/USDT"
    return [moment, str(trade["id"]), symbol, "buy" if trade["isBuyer"] else "sell", trade["price"].rstrip("0"),
            trade["qty"].rstrip("0"), trade["commission"].rstrip("0").rstrip(".") or "0"]


def write_csv(path, trades):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["timestamp", "trade_id", "symbol", "side", "price", "qty", "fee"])
        writer.writerows(csv_row(t) for t in trades)


@pytest.fixture
def csv_bot(tmp_path, exchange):
    config = config_for(tmp_path, exchange, {"name": "csvbot", "pidfile": "bot.pid", "data_file": "trades.csv",
                                             "journal": "journal.jsonl"})
    data = tmp_path / "trades.csv"
    backed_up = [t for t in exchange.trades[:900]]
    write_csv(data, backed_up)
    store = LocalStore(config.backup.dir)
    assert backup_bot(config.bots[0], store).outcome == "success"
    write_csv(data, exchange.trades)           # the bot went on trading (and its journal is lost)
    data.write_bytes(data.read_bytes()[:-40] + b"\x00" * 40)       # then its file was damaged
    return config, store


def per_symbol_ids(path) -> list[tuple[str, str]]:
    with open(path) as f:
        return [(row["symbol"], row["trade_id"]) for row in csv.DictReader(f)]


def test_a_csv_bot_without_journal_gets_every_fill_back_from_the_exchange_once(csv_bot, exchange):
    config, store = csv_bot
    bot = config.bots[0]
    report = restore(bot, store, Runtime(), Alive, verify_after=0, sleep=lambda s: None)
    restored = per_symbol_ids(bot.data_file)
    expected = [("BTC/USDT" if t["symbol"] == "BTCUSDT" else "ETH/USDT", str(t["id"])) for t in exchange.trades]
    assert sorted(restored) == sorted(expected) and len(set(restored)) == len(restored)
    assert validate_file(bot.data_file).valid
    assert report.sources == {"the exchange (binance)": FILLS - 900} and report.missing == []
    # 50 hours minus the backed-up part: two 24-hour windows per symbol, the BTC one in two pages
    windows = exchange.windows
    assert all(end - start <= 24 * HOUR * 1000 for start, end in windows) and len(windows) >= 5
    assert "asked binance for fills since" in report.detail


def test_a_wrong_key_restores_what_the_backup_had_and_says_what_is_missing(csv_bot, exchange, tmp_path):
    config, store = csv_bot
    (tmp_path / "exchange-key").write_text(f"wrong-key:{exchange.secret}\n")
    report = restore(config.bots[0], store, Runtime(), Alive, verify_after=0, sleep=lambda s: None)
    assert len(per_symbol_ids(config.bots[0].data_file)) == 900
    assert report.missing and "refused the key" in report.missing[0]


def test_a_429_storm_spends_one_budget_for_the_exchange_and_waits_out_each_retry_after(csv_bot, exchange):
    """A 429 is about the account or IP, not a symbol: with Retry-After 2 on every call, a restore made 8 calls
    (3 retries per symbol) and asked for the next symbol 0.2 s after being told to wait 2 s. Now: 3 retries in
    all, each after the Retry-After, then no more calls to that exchange."""
    config, store = csv_bot
    exchange.rate_limit_next(10_000, retry_after=2)
    waits = []
    report = restore(config.bots[0], store, Runtime(), Alive, verify_after=0, sleep=waits.append)
    assert len(per_symbol_ids(config.bots[0].data_file)) == 900
    assert exchange.requests["/api/v3/myTrades"] == 1 + 3
    assert [w for w in waits if w >= 2] == [2.0, 2.0, 2.0], "waits the exchange's Retry-After, 3 times in all"
    [missing] = report.missing
    assert missing.startswith("BTC/USDT, ETH/USDT: binance still rate-limits after 3 retries in all")


def test_a_banning_exchange_is_not_asked_again(csv_bot, exchange):
    config, store = csv_bot
    exchange.ban = True
    report = restore(config.bots[0], store, Runtime(), Alive, verify_after=0, sleep=lambda s: None)
    assert exchange.requests["/api/v3/myTrades"] == 1
    assert "banning" in report.missing[0]


# -- a Hummingbot --------------------------------------------------------------------------------------------

def fill_of(trade) -> Fill:
    pair = "BTC-USDT" if trade["symbol"] == "BTCUSDT" else "ETH-USDT"
    return Fill(trade["time"] / 1000, f"hbot-{trade['symbol']}-{trade['id']}", str(trade["id"]), pair,
                "BUY" if trade["isBuyer"] else "SELL", trade["price"], trade["qty"], trade["commission"])


@pytest.fixture
def hummingbot(tmp_path, exchange):
    files = HummingbotFiles(tmp_path / "hb")
    config = config_for(tmp_path, exchange, {"name": "hb", "preset": "hummingbot", "container": "hummingbot",
                                             "data_file": str(files.db), "log_file": str(files.log)})
    files.add(*[fill_of(t) for t in exchange.trades[:900]])
    store = LocalStore(config.backup.dir)
    assert backup_bot(config.bots[0], store).outcome == "success"
    return files, config, store


def hb_keys(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT market, symbol, exchange_trade_id FROM TradeFill ORDER BY rowid").fetchall()


def test_a_hummingbot_gets_the_mirror_then_the_exchange_each_fill_once(hummingbot, exchange, tmp_path):
    files, config, store = hummingbot
    bot = config.bots[0]
    mirror = tmp_path / "mirror" / "hb.jsonl"
    files.add(*[fill_of(t) for t in exchange.trades[900:1500]])      # logged and mirrored ...
    assert LogFillMirror(bot, mirror).sync() == 1500                  # (the mirror has the backed-up ones too)
    files.add(*[fill_of(t) for t in exchange.trades[1500:]], log=False)   # ... then the log was lost
    with open(files.db, "r+b") as f:
        f.write(b"\0" * 100)
    report = restore_database(bot, store, Runtime(), Alive, hummingbot_fill_in(bot, mirror), verify_after=0,
                              sleep=lambda s: None)
    keys = hb_keys(bot.data_file)
    assert len(keys) == FILLS and len(set(keys)) == FILLS
    assert report.sources == {"the fill mirror": 600, "the exchange (binance)": FILLS - 1500}
    # the book from the restored file is the book of every fill (in time order)
    restored = HummingbotStore(bot.data_file)
    assert restored.collect().valid
    truth = HummingbotFiles(tmp_path / "truth")
    truth.add(*[fill_of(t) for t in exchange.trades], log=False)
    expected = HummingbotStore(truth.db)
    expected.collect()
    assert restored.summary().realized == pytest.approx(expected.summary().realized, abs=1e-6)
    assert restored.summary().positions == pytest.approx(expected.summary().positions)


def test_replaying_the_mirror_twice_adds_nothing_twice(hummingbot, exchange, tmp_path):
    files, config, store = hummingbot
    bot = config.bots[0].model_copy(update={"replay": None})
    mirror = tmp_path / "mirror" / "hb.jsonl"
    files.add(*[fill_of(t) for t in exchange.trades[900:1000]])
    LogFillMirror(bot, mirror).sync()
    for _ in range(2):
        restore_database(bot, store, Runtime(), Alive, hummingbot_fill_in(bot, mirror), verify_after=0,
                         sleep=lambda s: None)
        keys = hb_keys(bot.data_file)
        assert len(keys) == 1000 and len(set(keys)) == 1000


# -- through the restore playbook, with a real paperbot ---------------------------------------------------

def test_an_exchange_that_refuses_leaves_the_journals_restore_and_a_notice_of_what_is_missing(
        tmp_path, exchange, paperbots, engine_factory, telegram):
    """A trading paperbot's file is damaged; its replay key is wrong: the restore still puts back the backup and
    the journal, and the Telegram notice says what the exchange could not confirm."""
    from tests.conftest import kill_pidfile, wait_for
    from tests.remediator.conftest import alert, client_for, make_config, payload, post

    bot = paperbots("keeper", trade_interval=0.02)
    wait_for(lambda: len(bot.journal.read_text().splitlines()) >= 15, what="15 fills")
    (tmp_path / "exchange-key").write_text(f"revoked-key:{exchange.secret}\n")
    replay = {"exchange": "binance", "symbols": ["ETH/USDT"], "credentials_file": "exchange-key",
              "api_url": exchange.url, "options": SPOT}
    config = make_config(tmp_path, [bot.bot_config(check_interval=1, replay=replay)], telegram_url=telegram.url,
                         verify_after="1s")
    config = config.model_copy(update={"backup": config.backup.model_copy(update={"dir": tmp_path / "backups"})})
    assert backup_bot(config.bots[0], LocalStore(tmp_path / "backups")).outcome == "success"
    with open(bot.csv, "r+b") as f:                  # NUL bytes over a row in the middle
        f.seek(bot.csv.stat().st_size // 2)
        f.write(b"\0" * 40)
    engine = engine_factory(config)
    post(client_for(engine), payload(alert("keeper", alertname="TradingBotDataCorrupted", notify="telegram")))
    engine.runner.dispatch_due(inline=True)
    [action] = [a for a in engine.ledger.actions() if a.playbook == "restore"]
    assert action.outcome == "success", action.detail
    assert "refused the key" in action.detail and "replayed from journal" in action.detail
    assert exchange.requests["/api/v3/myTrades"] == 1, "a refused key is not asked again"
    notice = telegram.messages()[0]["text"]
    assert "restored" in notice and "Not checked, fills may be missing" in notice and "refused the key" in notice
    kill_pidfile(bot.pidfile)
    journal = [json.loads(line)["trade_id"] for line in bot.journal.read_text().splitlines() if line.strip()]
    assert [line.split(",")[1] for line in bot.csv.read_text().splitlines()[1:]] == journal


def test_a_fill_logged_without_its_newline_before_a_rotation_is_mirrored(hummingbot, exchange, tmp_path):
    """The last line of a rotated log is a line even without its newline (the error counter always took it;
    the mirror dropped it until both followed the log with one LineFollower)."""
    files, config, _ = hummingbot
    bot = config.bots[0]
    mirror = LogFillMirror(bot, tmp_path / "mirror" / "hb.jsonl")
    assert mirror.sync() == 900
    files.add(fill_of(exchange.trades[900]))
    files.log.write_bytes(files.log.read_bytes().rstrip(b"\n"))      # the bot died mid-write, then rotated
    assert mirror.sync() == 0
    files.log.rename(files.log.with_name(files.log.name + ".1"))
    files.log.write_bytes(b"")
    assert mirror.sync() == 1


def hummingbot_reads_fee(data: dict) -> tuple[str, Decimal, object, list[tuple[str, Decimal]]]:
    """TradeFeeBase.from_json's rules, ported from hummingbot/core/data_type/trade_fee.py: `fee_type` picks the
    class (AddedToCost or DeductedFromReturns, else KeyError), `percent` is a Decimal, `percent_token` must be
    there (None allowed), each flat fee is TokenAmount.from_json: `token` and a Decimal `amount`."""
    kind = {"AddedToCost": "AddedToCost", "DeductedFromReturns": "DeductedFromReturns"}[data["fee_type"]]
    return kind, Decimal(data["percent"]), data["percent_token"], [
        (fee["token"], Decimal(fee["amount"])) for fee in data["flat_fees"]]


def test_every_fill_a_restore_writes_has_a_fee_hummingbot_itself_can_read(hummingbot, exchange, tmp_path):
    """Replayed fills got trade_fee {"source": "exchange replay"}: Hummingbot's from_json fails on it. Now
    the exchange's fee is a flat fee in its asset, and the side picks the fee class as new_spot_fee does."""
    files, config, store = hummingbot
    bot = config.bots[0]
    files.add(*[fill_of(t) for t in exchange.trades[900:]], log=False)     # lost with the log: from the exchange
    with open(files.db, "r+b") as f:
        f.write(b"\0" * 100)
    report = restore_database(bot, store, Runtime(), Alive, hummingbot_fill_in(bot, None), verify_after=0,
                              sleep=lambda s: None)
    assert report.sources["the exchange (binance)"] == FILLS - 900
    by_id = {str(t["id"]): t for t in exchange.trades}
    with sqlite3.connect(bot.data_file) as db:
        rows = db.execute("SELECT trade_type, trade_fee, exchange_trade_id FROM TradeFill").fetchall()
    assert len(rows) == FILLS
    for trade_type, fee, trade_id in rows[900:]:
        kind, percent, token, flat = hummingbot_reads_fee(json.loads(fee))
        trade = by_id[trade_id]
        assert kind == ("AddedToCost" if trade_type == "BUY" else "DeductedFromReturns") and percent == 0
        assert token is None and flat == [(trade["commissionAsset"], Decimal(str(trade["commission"])))]
