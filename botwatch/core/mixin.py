"""botwatch's monitoring mixin: every threshold, window and selector in one place, and the rules built from it.

The alert rules and their texts, the runbook links, the dashboards' windows and the morning report's
windows all read CONFIG. `make generate` (`python -m botwatch.core.mixin --out FILE`) writes
prometheus/rules/botwatch.rules.yml from it; a test fails when the committed file is stale.
`botwatch up --timings fast` renders the same rules from FAST for demos and the end-to-end test. Change a
threshold here, never in the YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from botwatch.core.units import format_duration, parse_duration

PORTS = {"exporter": 9817, "remediator": 9818, "alertmanager": 9093, "prometheus": 9090}   # CONFIG["ports"]

CONFIG = {
    # Every alert's runbook_url is this page plus the alert's anchor: by default the runbook shipped in the
    # package, served by the remediator at /runbook on its default address. Point it at your remediator
    # (or your own copy) with `python -m botwatch.core.mixin --runbook-url URL`; `botwatch up` renders its
    # rules with its own remediator's /runbook.
    "runbook_url": f"http://127.0.0.1:{PORTS['remediator']}/runbook",
    # The scrape jobs of botwatch's own parts, and the ports they listen on by default: the alerts select
    # by these jobs, and every Prometheus config (prometheus/*.yml, `botwatch up`, `--fleet`) is written
    # from them (botwatch.core.scrape). The agents have no fixed address: Prometheus finds them at the
    # remediator's /sd, and each listens on the exporter's port on its own host.
    "jobs": {"exporter": "botwatch-exporter", "remediator": "botwatch-remediator", "agents": "botwatch-agents",
             "alertmanager": "alertmanager", "prometheus": "prometheus"},
    "ports": PORTS,
    # Prometheus scrapes and evaluates this often: at most a bot's check_interval (15s by default), so a
    # scrape never waits on a check. The demo's fast timings scrape every second.
    "scrape_interval": "15s",
    # The alerts a remediator playbook acts on, and which: each carries the label `playbook`, Alertmanager
    # sends every alert with one to the remediator, and its playbook table runs the one named here.
    "playbooks": {"TradingBotDown": "restart", "TradingBotStuck": "restart", "TradingBotStopped": "start",
                  "TradingBotDataCorrupted": "restore", "TradingBotApiKeyErrors": "api_auth",
                  "TradingBotRateLimited": "api_rate_limit", "ExchangeRateLimited": "exchange_rate_limit",
                  "TradingBotDrawdown": "drawdown"},
    # BotwatchHostDown: an agent that no scrape reached and that heartbeat to no remediator for this long:
    # the host (or its network) is down, not its bots one by one. Both over the whole window, so a slow
    # scrape or poll just after the host is back does not page again.
    "host_down_after": "1m",
    # TradingBotDown: the exporter counts consecutive failed checks (the brief's "2 failed checks before
    # action"), so Prometheus adds no wait of its own; a longer `for` only delays every restart.
    "down_checks": 2,
    "down_for": "0s",
    # TradingBotDownCritical: the brief's "down > 5 minutes" pages a human.
    "down_critical_for": "5m",
    # TradingBotDownWithExposure: a bot down or stuck while it holds positions without a stoploss on the
    # exchange leaves that money unmanaged (no exit, no stop) until it is back: it pages at once, not after
    # down_critical_for; a flat bot, or one whose every position has its stop on the exchange, keeps that
    # timing. The amount is per bot (page_exposure_above: tradingbot_page_exposure_above_quote, 0 = any).
    "down_with_exposure_for": "0s",
    # TradingBotDataCorrupted: the validity gauge is already a state (it does not flap), so a short
    # wait only rides out one bad scrape.
    "corrupted_for": "30s",
    # TradingBotDataFileMissing: a running bot that has written no trade file yet is not corrupt: a new
    # bot may wait a while for its first fill. After this long up without one, the path is probably wrong.
    # (A file that existed and vanished is TradingBotDataCorrupted, check="missing", at once.)
    "data_file_grace": "10m",
    # TradingBotStaleData: the threshold is per bot (tradingbot_stale_after_seconds); this is how long
    # the file must stay stale before a warning.
    "stale_for": "2m",
    # TradingBotStuck: a preset bot whose process runs but whose main loop is older than its stuck_after
    # (tradingbot_stuck_after_seconds), or whose API does not answer its ping: a frozen process freezes
    # its API too. The wait rides out one slow ping; the loop age is already a threshold of its own.
    "stuck_for": "1m",
    # TradingBotStopped: a bot that reports itself stopped or paused while its process runs; a short wait
    # lets a reload_config pass.
    "stopped_for": "30s",
    # TradingBotApiKeyErrors: any auth error within the window pages; restarting doesn't fix a key.
    "auth_error_window": "5m",
    "auth_errors_for": "0s",
    # TradingBotRateLimited: a few 429s are normal; this many in the window runs on_rate_limit.
    "rate_limit_window": "5m",
    "rate_limit_errors": 5,
    "rate_limited_for": "2m",
    # ExchangeRateLimited: bots on one exchange account or IP share its limit, so their rate-limit errors
    # are summed per exchange (tradingbot_info names each bot's exchange): this many in the window, from
    # however many bots, runs every one's on_rate_limit (or the exchange's own command) once.
    "exchange_rate_limit_errors": 10,
    # TradingBotDrawdown: the threshold is per bot (max_drawdown: tradingbot_max_drawdown_quote, against the
    # exporter's tradingbot_equity_peak within its drawdown_window); the wait rides out one mark price that
    # spiked for a scrape.
    "drawdown_for": "1m",
    # TradingBotPositionDrift: the account's balance of a symbol's base asset against the position the bot's
    # records imply, looked at every drift_check_interval (15m): apart by more than this share of the larger,
    # through two looks in a row (a fill the exchange made a moment before the bot wrote it is not drift).
    "drift_tolerance": 0.01,
    "drift_for": "20m",
    # ExchangeClockSkew: signed calls carry this host's time and the exchange refuses one outside its window
    # (Binance's recvWindow: 5 s by default; -1021). Paging at a fifth of that leaves time to fix NTP before
    # orders fail; the wait rides out one slow, lopsided round trip.
    "clock_skew_max": 1.0,
    "clock_skew_for": "2m",
    # ExchangeErrors: network errors and "exchange not available" from every bot on one exchange, summed:
    # an exchange outage is one page, not one per bot.
    "exchange_errors": 20,
    "exchange_errors_for": "5m",
    # TradingBotAbnormalTradeFrequency: the rate window trades noise for speed. 30m smooths a bot that
    # trades a few times an hour; bounds come from tradingbot_expected_trades_per_hour per bot.
    "trade_rate_window": "30m",
    "abnormal_frequency_for": "10m",
    # TradingBotRestartLoop: the remediator gave up (circuit open); nothing waits.
    "restart_loop_for": "0s",
    # TradingBotAbsent: a bot seen within this lookback that the exporter no longer publishes.
    "absent_lookback": "1h",
    "absent_for": "5m",
    # BotwatchCheckUnknown: botwatch could not ask a bot's runtime (docker daemon away, socket permission,
    # systemctl failing). Unknown is not down, so nothing restarts it, and tradingbot_up has no sample: for
    # this long botwatch is blind to that bot, as bad as a bot down, so it pages; a daemon hiccup shorter
    # than this says nothing.
    "unknown_for": "5m",
    # Self-monitoring.
    "component_down_for": "2m",
    "delivery_rate_window": "5m",
    "delivery_failing_for": "5m",
    # Uptime SLO: 99.5% over 7 days. Burn rates follow the multi-window recipe, scaled to a 7d period:
    # page when 5% of the week's budget burns within 1h (8.4x), ticket when 10% burns within 6h (2.8x).
    "slo_target": 0.995,
    "slo_period": "7d",
    "burn_fast": {"long": "1h", "short": "5m", "factor": 8.4, "for": "2m", "severity": "critical"},
    "burn_slow": {"long": "6h", "short": "30m", "factor": 2.8, "for": "15m", "severity": "warning"},
    # Recording rules evaluate at the global interval; the demo's fast timings shorten it.
    "uptime_windows": ["5m", "30m", "1h", "6h", "24h", "7d"],
    # Dashboards: the uptime shown beside each bot (one of uptime_windows, so it reads a recording rule)
    # and the window of "how many in the last …" panels (restarts, remediations, backups).
    "dashboard_uptime_window": "24h",
    "dashboard_increase_window": "1h",
}

# `botwatch up --timings fast`: the same rules, minutes become seconds, for demos and the e2e test.
FAST = dict(CONFIG, scrape_interval="1s", down_critical_for="20s", clock_skew_for="5s", exchange_errors_for="10s",
            drawdown_for="2s", drift_for="5s", unknown_for="20s", data_file_grace="30s",
            corrupted_for="2s", stopped_for="2s", stuck_for="2s", stale_for="5s", auth_error_window="1m",
            rate_limit_window="1m", rate_limited_for="5s", trade_rate_window="1m", abnormal_frequency_for="10s",
            absent_for="20s", component_down_for="10s", delivery_failing_for="10s", host_down_after="10s")


NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def spoken_count(n: int) -> str:
    """2 -> "two": how a summary says a small count."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def spoken_duration(duration: str) -> str:
    """"5m" -> "5 minutes", "1h" -> "an hour", "90s" -> "1m30s": how a summary says a window."""
    seconds = parse_duration(duration)
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"an {unit}" if count == 1 and unit == "hour" else (
                f"a {unit}" if count == 1 else f"{count} {unit}s")
    return format_duration(seconds)


def percent(ratio: float) -> str:
    """0.995 -> "99.5%"."""
    return f"{ratio * 100:.10g}%"


def runbook_url(c: dict, alertname: str) -> str:
    return f"{c['runbook_url']}#{alertname.lower()}"


def selector(c: dict, part: str) -> str:
    """The selector of one of botwatch's own scrape jobs: selector(c, "exporter") -> 'job="botwatch-exporter"'."""
    return f'job="{c["jobs"][part]}"'


def _alert(c, name, expr, for_, severity, summary, description, annotations=None, **labels):
    playbook = {"playbook": c["playbooks"][name]} if name in c["playbooks"] else {}
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **labels, **playbook},
        "annotations": {"summary": summary, "description": description, "runbook_url": runbook_url(c, name),
                        **(annotations or {})},
    }


# TradingBotDown carries when its down episode began, as the exporter saw it (a death event's time, else the
# first failed check): read by the same evaluation as its expression, so it names the episode that evaluation
# saw. The remediator tells by it the alert that follows a death its fast path already restarted (that
# death's copy) from a new one; startsAt is only when an evaluation first saw the episode.
DOWN_SINCE = ('{{ with printf "tradingbot_down_since_seconds{bot=\'%s\'}" $labels.bot | query }}'
              '{{ . | first | value | printf "%.3f" }}{{ end }}')


# What a bot holds, said in every notice about it being down, stuck or stopped: "2 open positions, 1840.00 USDT;
# 1 without a known stoploss on the exchange" (botwatch.core.exposure; the same words as the remediator's).
EXPOSURE = (
    '{{ with printf "tradingbot_open_positions{bot=\'%s\'}" $labels.bot | query }}'
    '{{ $n := . | first | value }}{{ if eq $n 0.0 }}flat (no open position){{ else }}'
    '{{ $n | printf "%.0f" }} open position{{ if ne $n 1.0 }}s{{ end }}'
    '{{ with printf "tradingbot_exposure_quote{bot=\'%s\'}" $labels.bot | query }}, '
    '{{ . | first | value | printf "%.2f" }}{{ end }}'
    '{{ with printf "tradingbot_info{bot=\'%s\',quote!=\'\'}" $labels.bot | query }} {{ (. | first).Labels.quote }}{{ end }}'
    '{{ with printf "tradingbot_unprotected_positions{bot=\'%s\'} > 0" $labels.bot | query }}; '
    '{{ . | first | value | printf "%.0f" }} without a known stoploss on the exchange'
    '{{ else }}; each with a stoploss on the exchange{{ end }}{{ end }}{{ end }}'
)
# down: as many failed checks in a row as the exporter counts; stuck: the loop or the API of a running preset bot
DOWN = "tradingbot_down_checks >= {down_checks}"
STUCK = ("((time() - tradingbot_last_loop_timestamp_seconds) > on (bot) group_left tradingbot_stuck_after_seconds"
         " or on (bot) (tradingbot_health_up == 0 and on (bot) tradingbot_stuck_after_seconds))"
         " and on (bot) tradingbot_process_up == 1")


def recording_rules(c: dict) -> list[dict]:
    # uptime counts only the time a bot was not held: a paused bot's samples are left out, not counted down
    rules = [{"record": "bot:tradingbot_up:unpaused", "expr": "tradingbot_up" + UNPAUSED}]
    rules += [{"record": f"bot:tradingbot_uptime:ratio_{w}", "expr": f"avg_over_time(bot:tradingbot_up:unpaused[{w}])"}
             for w in c["uptime_windows"]]
    rules += [
        {"record": "bot:tradingbot_trades_per_hour:rate",
         "expr": f"rate(tradingbot_trades_total[{c['trade_rate_window']}]) * 3600"},
        {"record": f"exchange:tradingbot_rate_limit_errors:increase{c['rate_limit_window']}",
         "expr": f"sum by (exchange) (increase(tradingbot_api_errors_total{{kind=\"rate_limit\"}}[{c['rate_limit_window']}])"
                 " * on (bot) group_left (exchange) max by (bot, exchange) (tradingbot_info{exchange!=\"\"}))"},
        {"record": f"exchange:tradingbot_other_errors:increase{c['rate_limit_window']}",
         "expr": f"sum by (exchange) (increase(tradingbot_api_errors_total{{kind=\"other\"}}[{c['rate_limit_window']}])"
                 " * on (bot) group_left (exchange) max by (bot, exchange) (tradingbot_info{exchange!=\"\"}))"},
        {"record": "bot:tradingbot_equity:change_24h", "expr": "tradingbot_equity - tradingbot_equity offset 24h"},
        {"record": "bot:tradingbot_realized_pnl:change_24h",
         "expr": "tradingbot_realized_pnl - tradingbot_realized_pnl offset 24h"},
    ]
    return rules


def alert_rules(c: dict) -> list[dict]:
    """Every alert, in the order the rules file lists them."""
    return liveness_alerts(c) + trading_alerts(c) + self_alerts(c)


# a bot held by a pause, a maintenance window or a stop by its operator (remediator.intent) is not down, stuck,
# stopped, stale or quiet: its alerts stay silent and its uptime does not count (tradingbot_paused)
UNPAUSED = " unless on (bot) tradingbot_paused == 1"


def liveness_alerts(c: dict) -> list[dict]:
    """The bot is down, its data is corrupt or stale, its exchange refuses it."""
    return [
        _alert(c, "TradingBotDown", DOWN.format(**c) + UNPAUSED, c["down_for"], "remediate",
               f"A trading bot failed {spoken_count(c['down_checks'])} consecutive checks.",
               "{{ $labels.bot }} has failed {{ $value }} consecutive checks; botwatch is restarting it.",
               annotations={"down_since": DOWN_SINCE, "exposure": EXPOSURE}),
        _alert(c, "TradingBotDownWithExposure",
               "tradingbot_unprotected_exposure_quote > on (bot) group_left tradingbot_page_exposure_above_quote"
               f" and on (bot) ({DOWN.format(**c)} or on (bot) {STUCK})" + UNPAUSED,
               c["down_with_exposure_for"], "critical",
               "A trading bot is down while it holds positions without a stoploss on the exchange.",
               "{{ $labels.bot }} is down or stuck with {{ $value | printf \"%.2f\" }} of its positions unprotected "
               "on the exchange: nothing exits or stops them until it is back. botwatch is restarting it.",
               annotations={"exposure": EXPOSURE}),
        _alert(c, "TradingBotDownCritical", "tradingbot_up == 0" + UNPAUSED, c["down_critical_for"], "critical",
               f"A trading bot has been down for more than {spoken_duration(c['down_critical_for'])}.",
               "{{ $labels.bot }} has been down for more than " + c["down_critical_for"]
               + "; automatic recovery has not brought it back.", annotations={"exposure": EXPOSURE}),
        _alert(c, "TradingBotDataCorrupted", "tradingbot_data_file_valid == 0", c["corrupted_for"], "remediate",
               "A trading bot's trade data file is corrupt.",
               "The trade file of {{ $labels.bot }} failed validation; botwatch is restoring it from the last "
               "good backup and the bot's journal.", notify="telegram"),
        _alert(c, "TradingBotDataFileMissing",
               "tradingbot_data_file_present == 0 unless on (bot) tradingbot_data_file_valid"
               " and on (bot) tradingbot_up == 1" + UNPAUSED,
               c["data_file_grace"], "warning",
               "A running trading bot has no trade file yet.",
               "{{ $labels.bot }} has been up for " + c["data_file_grace"] + " and its trade file does not exist: "
               "no trade yet, or data_file points to the wrong place. Nothing is restored: there is nothing to "
               "restore."),
        _alert(c, "TradingBotStuck", STUCK + UNPAUSED,
               c["stuck_for"], "remediate",
               "A running trading bot's main loop has stopped.",
               "{{ $labels.bot }} runs but its main loop is stale or its API does not answer: frozen or "
               "deadlocked; botwatch is restarting it.", annotations={"exposure": EXPOSURE}, notify="telegram"),
        _alert(c, "TradingBotStopped",
               "tradingbot_state{state!=\"running\"} == 1 and on (bot) tradingbot_process_up == 1" + UNPAUSED,
               c["stopped_for"], "remediate",
               "A running trading bot has stopped trading.",
               "{{ $labels.bot }} runs but reports itself {{ $labels.state }}; botwatch asks it to start through "
               "its API, and restarts it if that does not help.", annotations={"exposure": EXPOSURE}),
        _alert(c, "TradingBotStaleData",
               "(time() - tradingbot_data_file_last_write_timestamp_seconds) > on (bot) group_left tradingbot_stale_after_seconds"
               " and on (bot) tradingbot_up == 1" + UNPAUSED,
               c["stale_for"], "warning",
               "A running trading bot has stopped writing its trade file.",
               "{{ $labels.bot }} is up but its trade file was last written {{ $value | humanizeDuration }} ago."),
        _alert(c, "TradingBotApiKeyErrors",
               f"increase(tradingbot_api_errors_total{{kind=\"auth\"}}[{c['auth_error_window']}]) > 0",
               c["auth_errors_for"], "critical",
               "A trading bot is getting API-key errors from its exchange.",
               "{{ $labels.bot }} logged {{ $value | humanize }} authentication errors in the last "
               + c["auth_error_window"] + "; restarting won't help: check or rotate its API key."),
        _alert(c, "TradingBotRateLimited",
               f"increase(tradingbot_api_errors_total{{kind=\"rate_limit\"}}[{c['rate_limit_window']}])"
               f" > {c['rate_limit_errors']}",
               c["rate_limited_for"], "warning",
               "A trading bot is being rate-limited by its exchange.",
               "{{ $labels.bot }} hit {{ $value | humanize }} rate-limit errors in the last "
               + c["rate_limit_window"] + "; botwatch runs its on_rate_limit command if one is configured."),
        _alert(c, "ExchangeRateLimited",
               f"exchange:tradingbot_rate_limit_errors:increase{c['rate_limit_window']} > {c['exchange_rate_limit_errors']}",
               c["rate_limited_for"], "warning",
               "The bots on one exchange are being rate-limited together.",
               "The bots on {{ $labels.exchange }} hit {{ $value | humanize }} rate-limit errors between them in the "
               "last " + c["rate_limit_window"] + "; they share its limit, so botwatch asks each to slow down "
               "(their on_rate_limit, or the exchange's) before the exchange bans the account or IP."),
        _alert(c, "TradingBotDrawdown",
               "tradingbot_equity_peak - tradingbot_equity > on (bot) group_left tradingbot_max_drawdown_quote", c["drawdown_for"],
               "critical", "A trading bot's equity fell further below its peak than its max_drawdown.",
               "{{ $labels.bot }}'s equity is {{ $value | printf \"%.2f\" }} below its peak"
               "{{ with printf \"tradingbot_equity_peak{bot='%s'}\" $labels.bot | query }} of "
               "{{ . | first | value | printf \"%.2f\" }}{{ end }}; botwatch runs its on_drawdown, if it has one, "
               "and does not stop it otherwise.", annotations={"exposure": EXPOSURE}),
        _alert(c, "TradingBotPositionDrift",
               f"abs(tradingbot_position_drift) > on (bot, symbol) group_left {c['drift_tolerance']}"
               " * abs(tradingbot_exchange_position)",
               c["drift_for"], "critical",
               "A trading bot's records and its exchange account disagree on a position.",
               "{{ $labels.bot }}: the exchange holds "
               "{{ with printf \"tradingbot_exchange_position{bot='%s',symbol='%s'}\" $labels.bot $labels.symbol | query }}"
               "{{ . | first | value | printf \"%g\" }}{{ end }} of {{ $labels.symbol }}'s base asset, its records "
               "{{ with printf \"tradingbot_exchange_position{bot='%s',symbol='%s'} - tradingbot_position_drift"
               "{bot='%s',symbol='%s'}\" $labels.bot $labels.symbol $labels.bot $labels.symbol | query }}"
               "{{ . | first | value | printf \"%g\" }}{{ end }}: a manual trade, a fill it never recorded, or a "
               "restore that missed one."),
        _alert(c, "ExchangeClockSkew",
               f"abs(tradingbot_exchange_clock_offset_seconds) > {c['clock_skew_max']}", c["clock_skew_for"], "critical",
               "This host's clock is off from an exchange's: its signed calls will soon be refused.",
               "The clock of {{ $labels.exchange }} is {{ $value | printf \"%.2f\" }} s away from "
               "{{ with $labels.host }}{{ . }}{{ else }}{{ $labels.instance }}{{ end }}'s; past the exchange's "
               "window (Binance: 5 s) every order fails with -1021. Fix the host's time (NTP)."),
        _alert(c, "ExchangeErrors",
               f"exchange:tradingbot_other_errors:increase{c['rate_limit_window']} > {c['exchange_errors']}",
               c["exchange_errors_for"], "warning",
               "The bots on one exchange keep getting network or exchange errors.",
               "The bots on {{ $labels.exchange }} logged {{ $value | humanize }} network or exchange errors "
               "between them in the last " + c["rate_limit_window"] + ": the exchange or the way to it is in "
               "trouble, not one bot."),
    ]


def trading_alerts(c: dict) -> list[dict]:
    """The bot trades abnormally, restarts without end, vanished, or burns its uptime budget."""
    return [
        _alert(c, "TradingBotAbnormalTradeFrequency",
               "bot:tradingbot_trades_per_hour:rate > on (bot) group_left tradingbot_expected_trades_per_hour{bound=\"max\"}"
               + UNPAUSED,
               c["abnormal_frequency_for"], "critical",
               "A trading bot is trading far more often than expected.",
               "{{ $labels.bot }} trades {{ $value | humanize }} times an hour, above its configured maximum: "
               "a runaway loop?", direction="high"),
        _alert(c, "TradingBotAbnormalTradeFrequency",
               "bot:tradingbot_trades_per_hour:rate < on (bot) group_left tradingbot_expected_trades_per_hour{bound=\"min\"}"
               " and on (bot) tradingbot_up == 1"
               # only once the rate window is fully covered: rate() reads low over a partial window
               f" and on (bot) tradingbot_trades_total offset {c['trade_rate_window']}" + UNPAUSED,
               c["abnormal_frequency_for"], "critical",
               "A running trading bot has (nearly) stopped trading.",
               "{{ $labels.bot }} is up but trades only {{ $value | humanize }} times an hour, below its "
               "configured minimum: alive but stuck?", direction="low"),
        _alert(c, "TradingBotRestartLoop", "botwatch_circuit_open == 1", c["restart_loop_for"], "critical",
               "botwatch gave up restarting a trading bot.",
               "Restarts of {{ $labels.bot }} kept failing; botwatch stopped trying until an operator resets it."),
        _alert(c, "TradingBotAbsent",
               f"max by (host, bot) (max_over_time(tradingbot_info[{c['absent_lookback']}]))"
               f" unless on (bot) max by (host, bot) (tradingbot_info)",
               c["absent_for"], "warning",
               "A trading bot vanished from the exporter's metrics.",
               "{{ $labels.bot }} was monitored within the last " + c["absent_lookback"]
               + " but the exporter no longer publishes it: removed from the config, or not monitored?"),
        _burn_alert(c, "fast", "A trading bot is burning its uptime budget fast."),
        _burn_alert(c, "slow", "A trading bot is steadily burning its uptime budget."),
    ]


def self_alerts(c: dict) -> list[dict]:
    """botwatch's own parts: the exporter, the remediator, Alertmanager's deliveries."""
    exporter, remediator, am = selector(c, "exporter"), selector(c, "remediator"), selector(c, "alertmanager")
    agents = selector(c, "agents")
    return [
        # absent: neither the exporter nor any agent (many hosts) is scraped at all
        _alert(c, "BotwatchExporterDown",
               f"up{{{exporter}}} == 0 or (absent(up{{{exporter}}}) and on () absent(up{{{agents}}}))",
               c["component_down_for"], "critical",
               "Prometheus cannot scrape the botwatch exporter.",
               "No bot is being watched: the botwatch exporter ({{ $labels.instance }}) is not answering scrapes."),
        _alert(c, "BotwatchRemediatorDown", f"up{{{remediator}}} == 0 or absent(up{{{remediator}}})",
               c["component_down_for"], "critical",
               "Prometheus cannot scrape the botwatch remediator.",
               "No bot will be recovered automatically: the remediator ({{ $labels.instance }}) is not answering."),
        _alert(c, "BotwatchHostDown",
               f"max_over_time(up{{{agents}}}[{c['host_down_after']}]) == 0 and on (host)"
               f" (time() - max by (host) (botwatch_agent_last_seen_timestamp_seconds)) > {int(parse_duration(c['host_down_after']))}",
               "0s", "critical",
               "A host's botwatch agent is unreachable: the host or its network is down.",
               "Prometheus can't scrape the agent of {{ $labels.host }} and it has not heartbeat to any remediator for "
               "more than " + c["host_down_after"] + "; its bots' own alerts are held back meanwhile, and its queued "
               "jobs expire."),
        _alert(c, "BotwatchCheckUnknown", "botwatch_exporter_check_unknown == 1", c["unknown_for"], "critical",
               "botwatch cannot tell whether a trading bot is up.",
               "botwatch could not ask the runtime of {{ $labels.bot }} ({{ $labels.check }} check) for "
               + c["unknown_for"] + ": docker daemon, its socket's permissions or systemctl; the exporter's page "
               "and log say which. Unknown is not down: nothing is restarted while it lasts, and nothing would be "
               "if the bot died."),
        _alert(c, "BotwatchAlertDeliveryFailing",
               f"sum by (integration) (rate(alertmanager_notifications_failed_total{{{am}}}[{c['delivery_rate_window']}])) > 0",
               c["delivery_failing_for"], "critical",
               "Alertmanager is failing to deliver notifications.",
               "Alertmanager's {{ $labels.integration }} notifications have been failing for "
               + c["delivery_failing_for"] + ": alerts may not be reaching anyone."),
    ]


def _burn_alert(c: dict, window: str, summary: str) -> dict:
    """A multi-window burn-rate alert: both the long and the short window burn faster than the factor."""
    burn = c[f"burn_{window}"]
    floor = f"{1 - burn['factor'] * (1 - c['slo_target']):.4f}"
    # burning `factor` times too fast for `long` spends this share of the period's budget
    share = burn["factor"] * parse_duration(burn["long"]) / parse_duration(c["slo_period"])
    return _alert(c, "TradingBotUptimeBudgetBurn",
                  f"bot:tradingbot_uptime:ratio_{burn['long']} < {floor}"
                  f" and bot:tradingbot_uptime:ratio_{burn['short']} < {floor}",
                  burn["for"], burn["severity"], summary,
                  "{{ $labels.bot }} is down often enough to spend " + percent(round(share, 4)) + " of its "
                  + percent(c["slo_target"]) + " uptime budget over " + spoken_duration(c["slo_period"])
                  + " within " + spoken_duration(burn["long"]) + " (uptime over the last " + burn["long"]
                  + ": {{ $value | humanizePercentage }}).",
                  window=window)


def render(c: dict = CONFIG) -> str:
    doc = {"groups": [
        {"name": "botwatch.recording", "rules": recording_rules(c)},
        {"name": "botwatch.alerts", "rules": alert_rules(c)},
    ]}
    header = "# Generated from botwatch/core/mixin.py's CONFIG: edit that, then run `make generate`.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m botwatch.core.mixin", description="Write botwatch's alert and recording rules.")
    p.add_argument("--out", default="prometheus/rules/botwatch.rules.yml", help="the rules file (default %(default)s)")
    p.add_argument("--fast", action="store_true", help="the demo's fast timings instead of the defaults")
    p.add_argument("--runbook-url", help="where the runbook is (default %(default)s: the remediator's /runbook)",
                   default=CONFIG["runbook_url"])
    args = p.parse_args(argv)
    out = Path(args.out)
    if not out.parent.is_dir():
        p.error(f"--out {out}: no folder {out.parent} (run from the repository's root, or name the file)")
    out.write_text(render(dict(FAST if args.fast else CONFIG, runbook_url=args.runbook_url)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
