"""A Hummingbot as the exporter watches it: its database, its log's error lines, its newest line as loop time."""

import os
import time

from botwatch.core.checks import BotCheck, loop_trouble
from botwatch.core.config import config_from_mapping
from tests.fixtures.hummingbot_db import Fill, HummingbotFiles

ERROR_LINES = [
    ("hummingbot.connector.exchange.binance.binance_exchange", "ERROR",
     'Error executing request GET https://api.binance.com/api/v3/account. HTTP status is 401. '
     'Error: {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'),
    ("hummingbot.connector.exchange.binance.binance_exchange", "NETWORK",
     "Could not fetch account updates from Binance. Check API key and network connection."),
    ("hummingbot.core.web_assistant.rest_assistant", "ERROR",
     "Error executing request GET https://api.binance.com/api/v3/depth. HTTP status is 429. Error: Too many requests"),
    ("hummingbot.core.api_throttler.async_throttler", "WARNING",
     "API rate limit on /api/v3/order (1200 calls per 60s) has almost reached. Limits used is 1190 in the last 60 seconds"),
    ("hummingbot.strategy.pure_market_making", "WARNING", "Markets are not ready. Please wait..."),
    ("hummingbot.core.network_base", "WARNING", "Network status has changed to NetworkStatus.NOT_CONNECTED."),
]


def test_the_exporter_reads_a_hummingbots_database_errors_and_newest_line(tmp_path):
    files = HummingbotFiles(tmp_path)
    now = time.time()
    files.add(Fill(now - 60, "o1", "t1", "BTC-USDT", "BUY", "30000", "0.5", "15"),
              Fill(now - 30, "o2", "t2", "BTC-USDT", "SELL", "31000", "0.5", "15.5"))
    for logger, level, message in ERROR_LINES:
        files.line(logger, level, message, when=now - 20)
    files.line("hummingbot.strategy.pure_market_making", "INFO", "Created BUY order", when=now - 5)
    (tmp_path / "hb.pid").write_text(str(os.getpid()))
    config = config_from_mapping({"bots": [{"name": "hb-mm", "preset": "hummingbot", "pidfile": "hb.pid",
                                            "data_file": str(files.db), "log_file": str(files.log),
                                            "exchange": "binance", "starting_balance": 1000}]}, base=tmp_path)
    status = BotCheck(config.bots[0]).run()
    assert status.up and status.datafile.valid and status.datafile.rows == 2
    assert status.book.realized == 1000 * 0.5 - 30.5        # (31000 − 30000) × 0.5 − fees
    assert status.api_errors == {"auth": 2, "rate_limit": 2, "other": 2}
    assert abs(status.loop.last_loop - (now - 5)) < 0.01
    bot = config.bots[0]
    assert loop_trouble(bot, None, now) is None
    assert loop_trouble(bot, None, now + 3600).startswith("stuck: its log's newest line is")
