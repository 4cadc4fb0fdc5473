"""One bot in depth: pick it with the `bot` variable."""

from common import API_ERRORS, INCREASE, UPTIME, bot_variable, botwatch_dashboard, stat, target, timeseries

S = 'bot="$bot"'

dashboard = botwatch_dashboard(
    "botwatch / Bot", "botwatch-bot", variables=[bot_variable(multi=False)], panels=[
        stat("Up", [target(f"tradingbot_up{{{S}}}", "up")], 0, 0),
        stat(f"Uptime {UPTIME}", [target(f"bot:tradingbot_uptime:ratio_{UPTIME}{{{S}}}", UPTIME)], 6, 0, unit="percentunit"),
        stat("Equity", [target(f"tradingbot_equity{{{S}}}", "equity")], 12, 0, unit="currencyUSD"),
        stat("Trade file valid", [target(f"tradingbot_data_file_valid{{{S}}}", "valid")], 18, 0),
        timeseries("Liveness and health", [target(f"tradingbot_process_up{{{S}}}", "process"),
                                           target(f"tradingbot_health_up{{{S}}}", "health", "B")], 0, 4),
        timeseries("Health endpoint latency", [target(f"tradingbot_health_latency_seconds{{{S}}}", "latency")], 12, 4,
                   unit="s"),
        timeseries("Equity and P&L", [target(f"tradingbot_equity{{{S}}}", "equity"),
                                      target(f"tradingbot_realized_pnl{{{S}}}", "realized", "B"),
                                      target(f"tradingbot_unrealized_pnl{{{S}}}", "unrealized", "C")], 0, 12,
                   unit="currencyUSD"),
        timeseries("Positions", [target(f"tradingbot_position{{{S}}}", "{{symbol}}")], 12, 12),
        timeseries("Trades per hour", [target(f"bot:tradingbot_trades_per_hour:rate{{{S}}}", "rate"),
                                       target(f"tradingbot_expected_trades_per_hour{{{S}}}", "{{bound}}", "B")], 0, 20),
        timeseries("Trade file problems by check",
                   [target(f"tradingbot_data_file_problems{{{S}}} > 0 or tradingbot_data_file_problems{{{S},check=\"missing\"}}",
                           "{{check}}")], 12, 20),
        timeseries(f"API errors ({API_ERRORS})", [target(f"increase(tradingbot_api_errors_total{{{S}}}[{API_ERRORS}])", "{{kind}}")], 0, 28),
        timeseries(f"Restarts ({INCREASE})", [target(f"increase(botwatch_bot_restarts_total{{{S}}}[{INCREASE}])", "restarts")], 12, 28),
    ],
)
