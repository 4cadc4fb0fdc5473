"""Turns the monitor's latest check results into the tradingbot_* metrics (docs/metrics.md)."""

from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from botwatch import __version__
from botwatch.core.config import ERROR_KINDS
from botwatch.core.exposure import totals
from botwatch.exporter.monitor import Monitor


# what can hold a bot (the remediator's pauses table): tradingbot_paused{reason}
PAUSE_REASONS = ("pause", "maintenance", "operator_stop")

# the states Freqtrade reports (its State enum), each published as 0 or 1 so a change is a value change
BOT_STATES = ("running", "paused", "stopped", "reload_config")


def _gauge(name, doc, labels=("bot",)):
    return GaugeMetricFamily(name, doc, labels=list(labels))


class BotCollector(Collector):
    """Builds fresh metric families each scrape from the last results; it never runs a check itself."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def describe(self):
        return []   # families vary with the config: no describe-time registration checks

    def collect(self):
        started = time.monotonic()
        results = self.monitor.snapshot()
        f = _Families()
        for bot in self.monitor.config.bots:
            f.add(bot, results.get(bot.name))
        yield from f.all()
        yield from exporter_families(self.monitor, started)


def bot_families(bot, status) -> list:
    """One bot's families (those with samples)."""
    f = _Families()
    f.add(bot, status)
    return f.all()


def family_order() -> dict[str, int]:
    """Each bot family's place on the page, by the names its HELP line may carry (counters: with _total)."""
    families = _Families().families()
    return {name: i for i, family in enumerate(families) for name in (family.name, family.name + "_total")}


def paused_family(monitor: Monitor):
    """tradingbot_paused: 1 for the reason that holds a bot now, 0 for the others; none while unknown."""
    paused = monitor.paused
    if paused is None:
        return
    family = GaugeMetricFamily("tradingbot_paused", "1 while the bot is held by a pause, a maintenance window or a "
                                                    "stop by its operator (reason); botwatch does not act on it then.",
                               labels=["bot", "host", "reason"])
    for bot in monitor.config.bots:
        for reason in PAUSE_REASONS:
            family.add_metric([bot.name, bot.host, reason], int(paused.get(bot.name) == reason))
    yield family


def exporter_families(monitor: Monitor, started: float):
    """The exporter's own families, which follow the bots' on the page."""
    yield from paused_family(monitor)
    failures = CounterMetricFamily("botwatch_exporter_check_failures",
                                   "Check rounds that raised an unexpected error (a bug: see the log).",
                                   labels=["bot"])
    for name, count in monitor.failures.items():
        failures.add_metric([name], count)
    yield failures
    yield from clock_families(monitor.clocks)
    yield from drift_families(monitor.drift)
    build = GaugeMetricFamily("botwatch_exporter_build_info", "botwatch version; always 1.", labels=["version"])
    build.add_metric([__version__], 1)
    yield build
    yield GaugeMetricFamily("botwatch_exporter_scrape_duration_seconds",
                            "Time this scrape spent building the bot metrics.",
                            value=time.monotonic() - started)


def clock_families(clocks):
    """tradingbot_exchange_clock_offset_seconds and its round trip, per exchange, while the look is recent
    (an exchange that stopped answering its time has no figure: unknown, not 0)."""
    if clocks is None:
        return
    offset = GaugeMetricFamily("tradingbot_exchange_clock_offset_seconds",
                               "The exchange's clock minus this host's (median of a few round trips, each "
                               "against its midpoint); positive: the exchange is ahead.", labels=["exchange"])
    rtt = GaugeMetricFamily("tradingbot_exchange_clock_rtt_seconds",
                            "The median round trip of the exchange's time call.", labels=["exchange"])
    for exchange, look in sorted(clocks.recent().items()):
        offset.add_metric([exchange], look.offset)
        rtt.add_metric([exchange], look.rtt)
    yield offset
    yield rtt


def drift_families(drift):
    """tradingbot_exchange_position and tradingbot_position_drift per bot and symbol, while the look is recent."""
    if drift is None:
        return
    held = GaugeMetricFamily("tradingbot_exchange_position",
                             "The account's total of the symbol's base asset, as the exchange says (the bot's "
                             "replay key, every drift_check_interval).", labels=["bot", "host", "symbol"])
    apart = GaugeMetricFamily("tradingbot_position_drift",
                              "The exchange's amount minus the position the bot's records imply.",
                              labels=["bot", "host", "symbol"])
    for bot, drifts in drift.recent():
        for d in drifts:
            held.add_metric([bot.name, bot.host, d.symbol], d.exchange)
            apart.add_metric([bot.name, bot.host, d.symbol], d.difference)
    yield held
    yield apart


class _Families:
    def __init__(self):
        self._hosts: dict[str, str] = {}     # bot -> its host, the label every sample carries
        self.up = _gauge("tradingbot_up", "1 when the bot is alive: its process/container/unit runs and its "
                                          "health endpoint (if any) answers healthy.")
        self.process_up = _gauge("tradingbot_process_up", "1 when the bot's process, container or unit runs.")
        self.health_up = _gauge("tradingbot_health_up", "1 when the health endpoint answered 2xx with a healthy status.")
        self.health_latency = _gauge("tradingbot_health_latency_seconds", "Time the last health request took.")
        self.valid = _gauge("tradingbot_data_file_valid",
                            "1 while the trade file validates; once corrupt, 0 until the file is repaired. No "
                            "sample for a file that does not exist yet (see tradingbot_data_file_present).")
        self.present = _gauge("tradingbot_data_file_present",
                              "1 when the trade file exists; 0 before the bot wrote its first trade, or when it vanished.")
        self.problems = _gauge("tradingbot_data_file_problems",
                               "Problems found in the current trade file, by check.", ("bot", "check"))
        self.rows = _gauge("tradingbot_data_file_rows", "Data rows in the trade file.")
        self.last_write = _gauge("tradingbot_data_file_last_write_timestamp_seconds",
                                 "Modification time of the trade file, Unix seconds.")
        self.trades = CounterMetricFamily("tradingbot_trades", "Valid fills in the trade file.", labels=["bot"])
        self.last_trade = _gauge("tradingbot_last_trade_timestamp_seconds",
                                 "Timestamp of the newest fill in the trade file, Unix seconds.")
        self.realized = _gauge("tradingbot_realized_pnl",
                               "Realized P&L by average cost, fees subtracted, in the quote currency.")
        self.unrealized = _gauge("tradingbot_unrealized_pnl",
                                 "Unrealized P&L of open positions at the mark price, in the quote currency.")
        self.equity = _gauge("tradingbot_equity", "starting_balance + realized + unrealized P&L.")
        self.position = _gauge("tradingbot_position", "Open position per symbol; negative is short.",
                               ("bot", "symbol"))
        self.api_errors = CounterMetricFamily("tradingbot_api_errors",
                                              "Log lines matching the bot's API error patterns, by kind.",
                                              labels=["bot", "kind"])
        self.expected = _gauge("tradingbot_expected_trades_per_hour",
                               "Configured bounds of the normal trade rate.", ("bot", "bound"))
        self.stale_after = _gauge("tradingbot_stale_after_seconds",
                                  "Configured age after which a running bot's trade file is stale.")
        self.stuck_after = _gauge("tradingbot_stuck_after_seconds",
                                  "Configured age of the main loop after which a running bot is stuck.")
        self.info = _gauge("tradingbot_info", "The bot's type, runtime, preset, exchange and the quote currency of "
                           "the symbols it trades (\"\" before its first trade, or mixed); always 1.",
                           ("bot", "kind", "runtime", "preset", "exchange", "quote"))
        self.equity_peak = _gauge("tradingbot_equity_peak",
                                  "The highest equity within the bot's drawdown_window (kept across exporter restarts).")
        self.max_drawdown = _gauge("tradingbot_max_drawdown_quote",
                                   "How far below its peak the equity may fall before TradingBotDrawdown, in the quote "
                                   "currency (max_drawdown: an amount, or a percent of the peak).")
        self.page_exposure_above = _gauge("tradingbot_page_exposure_above_quote",
                                          "Unprotected exposure above this pages at once when the bot is down or "
                                          "stuck (page_exposure_above; 0: any).")
        self.open_positions = _gauge("tradingbot_open_positions", "Open positions (Freqtrade: open trades).")
        self.exposure = _gauge("tradingbot_exposure_quote",
                               "Σ |amount| x last known price of the open positions, in their quote currency.")
        self.unprotected = _gauge("tradingbot_unprotected_exposure_quote",
                                  "The part of tradingbot_exposure_quote without a stoploss order known to be open on "
                                  "the exchange (unknown counts: only Freqtrade's records say).")
        self.unprotected_positions = _gauge("tradingbot_unprotected_positions",
                                            "Open positions without a stoploss order known to be open on the exchange.")
        self.protected = _gauge("tradingbot_position_protected",
                                "1 while the symbol's open position has a stoploss order open on the exchange, 0 "
                                "while it has none; no sample where the bot's records can't say.", ("bot", "symbol"))
        self.last_loop = _gauge("tradingbot_last_loop_timestamp_seconds",
                                "When the bot last finished its main loop, by its own API (last known).")
        self.state = _gauge("tradingbot_state", "1 for the state the bot reports itself in (last known).",
                            ("bot", "state"))
        self.interval = _gauge("tradingbot_check_interval_seconds", "How often the bot is checked.")
        self.last_check = _gauge("tradingbot_last_check_timestamp_seconds", "When the bot was last checked.")
        self.down_checks = _gauge("tradingbot_down_checks", "Consecutive checks that found the bot down.")
        self.down_since = _gauge("tradingbot_down_since_seconds",
                                 "When the bot's current down episode began, Unix seconds: its death event, else "
                                 "the first check that found it down. No sample while it is up.")
        self.check_duration = _gauge("botwatch_exporter_check_duration_seconds",
                                     "Time the bot's last round of checks took.")
        self.check_errors = _gauge("botwatch_exporter_check_unknown",
                                   "1 when the last check could not ask the bot's runtime (docker, systemd, /proc): "
                                   "its up state is unknown and not published.", ("bot", "check"))

    def add(self, bot, status) -> None:
        self._hosts[bot.name] = bot.host
        self.static(bot, status)
        if status is not None:
            self.dynamic(status)
            self._drawdown(bot, status.equity_peak)

    def _drawdown(self, bot, peak: float | None) -> None:
        if peak is None:
            return
        self.equity_peak.add_metric([bot.name], peak)
        if bot.max_drawdown is not None:
            kind, number = bot.max_drawdown
            self.max_drawdown.add_metric([bot.name], number if kind == "quote" else abs(peak) * number / 100)

    def static(self, bot, status=None):
        name = bot.name
        said = status.loop.exchange if status and status.loop and status.loop.exchange else None
        exchange = bot.exchange_name({name: said} if said else None) or ""
        quote = status.book.quote if status is not None else ""
        self.info.add_metric([name, bot.type, bot.runtime, bot.preset or "", exchange, quote], 1)
        self.interval.add_metric([name], bot.check_interval)
        if bot.expected_trades_per_hour:
            self.expected.add_metric([name, "min"], bot.expected_trades_per_hour.min)
            if bot.expected_trades_per_hour.max is not None:
                self.expected.add_metric([name, "max"], bot.expected_trades_per_hour.max)
        if bot.stale_after:
            self.stale_after.add_metric([name], bot.stale_after)
        if bot.stuck_after:
            self.stuck_after.add_metric([name], bot.stuck_after)
        self.page_exposure_above.add_metric([name], bot.page_exposure_above)

    def dynamic(self, s):
        name = [s.bot]
        if "liveness" not in s.errors:       # unknown is not down: no sample, and BotwatchCheckUnknown says why
            self.up.add_metric(name, int(s.up))
            if s.liveness is not None:
                self.process_up.add_metric(name, int(s.liveness.up))
        if s.health is not None:
            self.health_up.add_metric(name, int(s.health.up))
            self.health_latency.add_metric(name, s.health.latency)
        self.check_errors.add_metric([s.bot, "liveness"], int("liveness" in s.errors))
        self.present.add_metric(name, int(s.datafile.present))
        if s.datafile.present or s.datafile.seen:     # not there yet is not corrupt; vanished is
            self.valid.add_metric(name, int(s.datafile.valid))
        for check in s.datafile.checks:
            self.problems.add_metric([s.bot, check], s.datafile.problems.get(check, 0))
        self.rows.add_metric(name, s.datafile.rows)
        if s.datafile.last_write is not None:
            self.last_write.add_metric(name, s.datafile.last_write)
        self.trades.add_metric(name, s.datafile.trades)
        if s.datafile.last_trade_ts is not None:
            self.last_trade.add_metric(name, s.datafile.last_trade_ts)
        self.realized.add_metric(name, s.book.realized)
        self.unrealized.add_metric(name, s.book.unrealized)
        self.equity.add_metric(name, s.book.equity)
        for symbol, qty in sorted(s.book.positions.items()):
            self.position.add_metric([s.bot, symbol], qty)
        self._exposure(s.bot, s.book.exposure)
        for kind in ERROR_KINDS:
            self.api_errors.add_metric([s.bot, kind], s.api_errors.get(kind, 0))
        if s.loop is not None:
            self._loop(s.bot, s.loop)
        self.last_check.add_metric(name, s.checked_at)
        self.down_checks.add_metric(name, s.down_checks)
        if s.down_since is not None and "liveness" not in s.errors:
            self.down_since.add_metric(name, s.down_since)
        self.check_duration.add_metric(name, s.duration)

    def _exposure(self, bot: str, exposures) -> None:
        t = totals(exposures)
        self.open_positions.add_metric([bot], t.positions)
        self.exposure.add_metric([bot], t.exposure)
        self.unprotected.add_metric([bot], t.unprotected)
        self.unprotected_positions.add_metric([bot], t.unprotected_positions)
        for e in exposures:
            if e.protected is not None:
                self.protected.add_metric([bot, e.symbol], int(e.protected))

    def _loop(self, bot: str, loop) -> None:
        if loop.last_loop is not None:
            self.last_loop.add_metric([bot], loop.last_loop)
        if loop.state is not None:
            for state in sorted(set(BOT_STATES) | {loop.state}):
                self.state.add_metric([bot, state], int(state == loop.state))

    def families(self) -> list:
        return [value for name, value in vars(self).items() if not name.startswith("_")]

    def all(self):
        """The families that have samples (one a config never fills, no health endpoints, is left out),
        each sample labelled with its bot's `host`."""
        filled = [family for family in self.families() if family.samples]
        for family in filled:
            family.samples = [sample._replace(labels={**sample.labels, "host": self._hosts[sample.labels["bot"]]})
                              for sample in family.samples]
        return filled
