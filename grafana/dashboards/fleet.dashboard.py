"""Fleet overview: is every bot up, trading within bounds, with a valid file, and what did botwatch do; with
many hosts, is every host's agent there, and how the jobs go."""

from grafanalib.core import Threshold

from common import BOT_SELECTOR as S
from common import INCREASE, UPTIME, bot_variable, botwatch_dashboard, host_variable, stat, target, timeseries, up

UP_MAPPINGS = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]

dashboard = botwatch_dashboard(
    "botwatch / Fleet overview", "botwatch-fleet", variables=[host_variable(), bot_variable(by_host=True)], panels=[
        stat("Bots up", [target(f"sum(tradingbot_up{{{S}}})", "up")], 0, 0,
             description="Bots whose process and health endpoint are up."),
        stat("Bots down", [target(f"count(tradingbot_up{{{S}}} == 0 unless on (bot) tradingbot_paused == 1) or vector(0)",
                                  "down")], 6, 0,
             thresholds=[Threshold("green", 0, 0.0), Threshold("red", 1, 1.0)],
             description="Bots down that nothing holds (a bot paused, in maintenance or stopped on purpose is "
                         "not counted: tradingbot_paused)."),
        stat("Corrupt trade files", [target(f"count(tradingbot_data_file_valid{{{S}}} == 0) or vector(0)", "corrupt")],
             12, 0, thresholds=[Threshold("green", 0, 0.0), Threshold("red", 1, 1.0)]),
        stat("Firing alerts", [target('count(ALERTS{alertstate="firing"}) or vector(0)', "alerts")], 18, 0),
        timeseries("Up / down per bot", [target(f"tradingbot_up{{{S}}}")], 0, 4,
                   description="1 up, 0 down, at each check."),
        timeseries(f"Uptime, last {UPTIME}", [target(f"bot:tradingbot_uptime:ratio_{UPTIME}{{{S}}}")], 12, 4, unit="percentunit"),
        timeseries("Equity", [target(f"tradingbot_equity{{{S}}}")], 0, 12, unit="currencyUSD"),
        timeseries("P&L: realized and unrealized",
                   [target(f"tradingbot_realized_pnl{{{S}}}", "{{bot}} realized"),
                    target(f"tradingbot_unrealized_pnl{{{S}}}", "{{bot}} unrealized", "B")], 12, 12, unit="currencyUSD"),
        timeseries("Trades per hour against their bounds",
                   [target(f"bot:tradingbot_trades_per_hour:rate{{{S}}}", "{{bot}}"),
                    target(f"tradingbot_expected_trades_per_hour{{{S}}}", "{{bot}} {{bound}}", "B")], 0, 20),
        timeseries("Trade file valid", [target(f"tradingbot_data_file_valid{{{S}}}")], 12, 20),
        timeseries(f"Restarts and remediations ({INCREASE})",
                   [target(f"increase(botwatch_bot_restarts_total{{{S}}}[{INCREASE}])", "{{bot}} restarts"),
                    target(f"sum by (bot, playbook, outcome) (increase(botwatch_remediations_total{{{S}}}[{INCREASE}]))",
                           "{{bot}} {{playbook}} {{outcome}}", "B")], 0, 28),
        timeseries("Firing alerts", [target('ALERTS{alertstate="firing"}', "{{alertname}} {{host}} {{bot}}")], 12, 28),
        # many hosts (docs/operations.md, "Many hosts"): one agent per host, jobs queued by the central remediator
        timeseries("Bots up per host", [target(f"sum by (host) (tradingbot_up{{{S}}})", "{{host}} up"),
                                        target(f"count by (host) (tradingbot_up{{{S}}})", "{{host}} bots", "B")],
                   0, 36, description="Each host's bots that are up, against how many it has."),
        timeseries("Agents: scraped, and seconds since their last heartbeat",
                   [target(up("agents", ',host=~"$host"'), "{{host}} scraped"),
                    target('time() - max by (host) (botwatch_agent_last_seen_timestamp_seconds{host=~"$host"})',
                           "{{host}} heartbeat age", "B")], 12, 36,
                   description="A host whose agent is not scraped and silent for a minute is BotwatchHostDown."),
        timeseries("Jobs", [target("max by (state) (botwatch_jobs)", "{{state}}")], 0, 44,
                   description="Queued and running now; expired (not started by their deadline) in all."),
        # money at risk (docs/metrics.md, "Money at risk")
        timeseries("Exposure, and the part without a stoploss on the exchange",
                   [target(f"tradingbot_exposure_quote{{{S}}}", "{{bot}}"),
                    target(f"tradingbot_unprotected_exposure_quote{{{S}}}", "{{bot}} unprotected", "B")], 12, 44,
                   description="Open positions at the last known price, in their quote currency. Unprotected: no "
                               "stoploss order known on the exchange (only Freqtrade's records say; others count "
                               "as unprotected). A bot down with some pages at once: TradingBotDownWithExposure."),
        timeseries("Drawdown from the equity peak",
                   [target(f"(tradingbot_equity_peak{{{S}}} - tradingbot_equity{{{S}}}) / tradingbot_equity_peak{{{S}}}",
                           "{{bot}}")], 0, 52, unit="percentunit",
                   description="How far the equity is below its highest within the bot's drawdown_window; "
                               "TradingBotDrawdown past its max_drawdown."),
        timeseries("Exchange clock offset",
                   [target("tradingbot_exchange_clock_offset_seconds", "{{exchange}} {{instance}}")], 12, 52, unit="s",
                   description="Each exchange's clock minus this host's (for the exchanges a bot's replay names); "
                               "ExchangeClockSkew past 1 s, before signed calls fail."),
    ],
)
