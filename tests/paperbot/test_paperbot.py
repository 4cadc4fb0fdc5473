"""The demo bot, run as a real process: its files, its health endpoint, and its misbehaviour on cue."""

import json
import signal
import time

from botwatch.core.book import Trade, TradeBook
from botwatch.core.config import ErrorPatterns
from botwatch.core.logtail import LogTail
from botwatch.core.tradefile import validate_file
from tests.conftest import wait_for


def fills(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def csv_rows(path):
    return path.read_text().splitlines()[1:]


def test_same_seed_same_market_and_decisions(paperbots):
    a = paperbots("det-a", seed=42, exit_after=15)
    b = paperbots("det-b", seed=42, exit_after=15)
    assert a.process.wait(timeout=30) == 1 and b.process.wait(timeout=30) == 1
    pick = lambda bot: [(f["side"], f["price"], f["qty"]) for f in fills(bot.journal)]
    assert pick(a) == pick(b) and len(pick(a)) == 15


def test_journal_first_then_a_valid_csv_that_matches_it(paperbots):
    bot = paperbots("match", trade_interval=0.05)
    wait_for(lambda: len(fills(bot.journal)) >= 20, what="20 fills")
    bot.kill(signal.SIGTERM)
    journal = fills(bot.journal)
    rows = csv_rows(bot.csv)
    as_rows = [",".join(f[k] for k in ("timestamp", "trade_id", "symbol", "side", "price", "qty", "fee")) for f in journal]
    assert rows == as_rows[:len(rows)] and len(journal) - len(rows) in (0, 1)
    book = TradeBook(1000)
    status = validate_file(bot.csv, sink=book)
    assert status.valid and status.trades == len(rows)


def test_health_reports_position_and_equity_consistent_with_the_file(paperbots):
    bot = paperbots("health", strategy="short", hang_after=12)     # stays up after 12 fills: nothing moves
    wait_for(lambda: bot.health()["trades"] >= 12, what="12 fills")
    health = bot.health()
    book = TradeBook(1000)
    validate_file(bot.csv, sink=book)
    summary = book.summary({health["symbol"]: health["mark_price"]})
    assert health["status"] == "ok" and health["symbol"] == "ETH/USDT"
    assert health["position"] == summary.positions["ETH/USDT"] and health["position"] <= 0
    assert abs(health["equity"] - summary.equity) < 1e-6
    assert bot.pidfile.read_text().strip() == str(bot.process.pid)


def test_resumes_position_and_numbering_from_the_journal(paperbots):
    bot = paperbots("resume", strategy="mm", trade_interval=0.05)
    wait_for(lambda: len(fills(bot.journal)) >= 10, what="10 fills")
    bot.kill()
    before = fills(bot.journal)
    again = paperbots("resume", strategy="mm", trade_interval=0.05, hang_after=len(before) + 5)
    wait_for(lambda: again.health()["state"] == "hung", what="5 more fills, then hung")
    after = fills(again.journal)
    ids = [f["trade_id"] for f in after]
    assert len(after) == len(before) + 5 and len(ids) == len(set(ids))
    assert ids[:len(before)] == [f["trade_id"] for f in before]
    book = TradeBook()
    for f in after:
        book.add(Trade(0, f["trade_id"], f["symbol"], f["side"], float(f["price"]), float(f["qty"]), float(f["fee"])))
    assert abs(again.health()["position"] - book.positions[after[0]["symbol"]].qty) < 1e-9


def test_a_fill_a_kill_kept_out_of_the_csv_is_appended_at_the_next_start(paperbots):
    """Killed between the journal write and the CSV row: the journal is ahead; the next start appends the
    missing rows (only when the CSV's last row is one the journal has; a torn row is left to the monitor)."""
    bot = paperbots("torn", trade_interval=0.05)
    wait_for(lambda: len(fills(bot.journal)) >= 10, what="10 fills")
    bot.kill(signal.SIGTERM)
    rows = bot.csv.read_text().splitlines(keepends=True)
    bot.csv.write_text("".join(rows[:-3]))                         # as if the last 3 CSV writes never happened
    again = paperbots("torn", trade_interval=0.05, hang_after=len(fills(bot.journal)))
    wait_for(lambda: again.health()["state"] == "hung", what="started, no new fill")
    assert bot.csv.read_text().splitlines(keepends=True) == rows
    assert validate_file(bot.csv).valid
    again.kill(signal.SIGTERM)

    bot.csv.write_text("".join(rows[:-1]) + rows[-1][:20])        # a torn last row: not the bot's to mend
    torn = bot.csv.read_bytes()
    third = paperbots("torn", trade_interval=0.05, hang_after=len(fills(bot.journal)))
    wait_for(lambda: third.health()["state"] == "hung", what="started again")
    assert bot.csv.read_bytes() == torn


def test_exit_after_n_fills(paperbots):
    bot = paperbots("quitter", exit_after=5)
    assert bot.process.wait(timeout=20) == 1
    assert len(fills(bot.journal)) == 5


def test_hang_after_n_fills_stays_alive_and_healthy(paperbots):
    bot = paperbots("hanger", hang_after=4)
    wait_for(lambda: bot.health()["state"] == "hung", what="hung")
    time.sleep(0.5)
    assert bot.process.poll() is None and bot.health()["status"] == "ok"
    assert len(fills(bot.journal)) == 4


def test_auth_errors_after_n_fills_are_caught_by_the_default_patterns(paperbots):
    bot = paperbots("badkey", auth_errors_after=3)
    wait_for(lambda: LogTail(bot.log, ErrorPatterns().compiled()).collect()["auth"] >= 3, what="auth errors")
    assert len(fills(bot.journal)) == 3


def test_sigterm_stops_cleanly_and_removes_the_pidfile(paperbots):
    bot = paperbots("polite")
    bot.kill(signal.SIGTERM)
    assert bot.process.returncode == 0 and not bot.pidfile.exists()
