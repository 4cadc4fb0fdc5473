import os

from botwatch.core.config import ErrorPatterns
from botwatch.core.logtail import MAX_LINE, LogTail

AUTH = 'ERROR binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}\n'
RATE = "WARNING binance 429 Too Many Requests\n"
OTHER = "ERROR ccxt.base.errors.ExchangeError: binance order rejected\n"
INFO = "INFO fill doge-long-00000001 buy 1000 DOGE/USDT @ 0.15\n"


def tail(path) -> LogTail:
    return LogTail(path, ErrorPatterns().compiled())


def write(path, text, mode="a"):
    with open(path, mode) as f:
        f.write(text)


def test_default_patterns_count_each_kind_once_per_line(tmp_path):
    log = tmp_path / "bot.log"
    write(log, INFO + AUTH + RATE + RATE + OTHER + INFO)
    assert tail(log).collect() == {"auth": 1, "rate_limit": 2, "other": 1}


def test_a_429_in_a_timestamp_or_a_price_is_no_rate_limit(tmp_path):
    """A log's milliseconds (",429") or a price are not an HTTP 429: counted as one, they ran a healthy bot's
    on_rate_limit (seen in the e2e test: `22:30:17,429 INFO paperbot fill …`)."""
    from botwatch.core.presets.freqtrade import ERROR_PATTERNS as FREQTRADE_ERROR_PATTERNS
    log = tmp_path / "bot.log"
    write(log, "2026-12-01 22:30:17,429 INFO paperbot[28698] fill rl-c-00000033 sell 0.4290 ETH/USDT @ 3012.429\n"
               "2026-12-01 22:30:17,418 - freqtrade.worker - INFO - Bot heartbeat. PID=4291\n" + RATE
               + "2026-12-01 22:30:18,001 - freqtrade - WARNING - binance GET https://x returned HTTP status 429\n")
    assert tail(log).collect()["rate_limit"] == 2
    freqtrade = LogTail(log, ErrorPatterns(**FREQTRADE_ERROR_PATTERNS).compiled())
    assert freqtrade.collect()["rate_limit"] == 2


def test_configured_patterns_replace_a_kinds_defaults(tmp_path):
    log = tmp_path / "bot.log"
    write(log, "KEY REJECTED\n" + AUTH)
    t = LogTail(log, ErrorPatterns(auth=["KEY REJECTED"]).compiled())
    assert t.collect()["auth"] == 1


def test_reads_incrementally_and_waits_for_a_whole_line(tmp_path):
    log = tmp_path / "bot.log"
    t = tail(log)
    assert t.collect()["auth"] == 0          # no file yet
    write(log, AUTH[:20])
    assert t.collect()["auth"] == 0
    write(log, AUTH[20:] + AUTH)
    assert t.collect()["auth"] == 2
    assert t.collect()["auth"] == 2          # nothing new: nothing counted again


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path):
    log = tmp_path / "bot.log"
    write(log, AUTH)
    t = tail(log)
    assert t.collect()["auth"] == 1
    write(log, AUTH)                          # written just before rotation, not yet collected
    os.rename(log, tmp_path / "bot.log.1")
    write(log, RATE + AUTH, mode="w")
    counts = t.collect()
    assert counts == {"auth": 3, "rate_limit": 1, "other": 0}


def test_truncation_starts_again_from_the_top(tmp_path):
    log = tmp_path / "bot.log"
    write(log, INFO * 10 + AUTH)
    t = tail(log)
    assert t.collect()["auth"] == 1
    write(log, RATE, mode="w")                 # copytruncate-style: same inode, shorter
    assert t.collect() == {"auth": 1, "rate_limit": 1, "other": 0}


def test_a_log_without_newlines_does_not_grow_without_bound(tmp_path):
    log = tmp_path / "bot.log"
    write(log, "x" * (3 * MAX_LINE) + "Invalid API-key")
    t = tail(log)
    t.collect()
    assert len(t._lines._partial) <= MAX_LINE
    write(log, "\n")
    assert t.collect()["auth"] == 1          # the cut line's last piece is still a line


def test_both_followers_of_a_log_take_the_last_line_of_a_rotated_file(tmp_path):
    """The error counter and Hummingbot's fill mirror follow a log with one LineFollower: a line the bot
    wrote without its newline before the rotation is a line for both."""
    log = tmp_path / "bot.log"
    write(log, AUTH.rstrip("\n"))
    t = tail(log)
    assert t.collect()["auth"] == 0          # no newline yet: not a whole line
    log.rename(tmp_path / "bot.log.1")
    write(log, "")
    assert t.collect()["auth"] == 1
