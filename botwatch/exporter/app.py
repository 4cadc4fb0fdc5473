"""The exporter's HTTP app: /metrics, a landing page at /, and /-/healthy."""

from __future__ import annotations

import html
from pathlib import Path

from prometheus_client import CollectorRegistry

from botwatch import __version__
from botwatch.core import memory
from botwatch.core.config import Config
from botwatch.exporter.checkpoints import Checkpoints
from botwatch.exporter.collector import BotCollector
from botwatch.exporter.monitor import Monitor
from botwatch.exporter.page import MetricsPage


def create_registry(monitor: Monitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BotCollector(monitor))
    return registry


def create_app(monitor: Monitor):
    """A WSGI app serving the monitor's results."""
    metrics = MetricsPage(monitor).wsgi

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/-/healthy":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"OK\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing_page(monitor.config, monitor).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; try /metrics\n"]

    return app


def _up_cell(status) -> str:
    if status is None:
        return "?"
    if "liveness" in status.errors:       # could not ask: say why, it is what the operator must fix
        return f"UNKNOWN: {html.escape(status.liveness.detail if status.liveness else '')}"
    return "up" if status.up else "DOWN"


def _file_cell(status) -> str:
    if status is None:
        return "?"
    if not status.datafile.present:
        return "VANISHED" if status.datafile.seen else "not there yet"
    return "valid" if status.datafile.valid else "CORRUPT"


def landing_page(config: Config, monitor: Monitor) -> str:
    results = monitor.snapshot()
    rows = []
    for bot in config.bots:
        status = results.get(bot.name)
        rows.append(f"<tr><td>{html.escape(bot.name)}</td><td>{html.escape(bot.runtime)}</td>"
                    f"<td>{_up_cell(status)}</td><td>{_file_cell(status)}</td><td>{bot.check_interval:g}s</td></tr>")
    return (f"<!doctype html><html><head><title>botwatch exporter</title></head><body>"
            f"<h1>botwatch exporter {__version__}</h1><p><a href=\"/metrics\">Metrics</a></p>"
            f"<table><tr><th>bot</th><th>runtime</th><th>up</th><th>data file</th><th>every</th></tr>"
            f"{''.join(rows)}</table></body></html>")


def start_exchange_looks(monitor: Monitor) -> list:
    """For bots whose replay names an exchange: its clock against this host's, and their positions against the
    account's balances, looked at in the background; the loops started (none without such a bot)."""
    from botwatch.exporter.clocks import ExchangeClocks
    from botwatch.exporter.drift import DriftChecks
    clocks = ExchangeClocks(monitor.config)
    if not clocks.replays:
        return []
    monitor.clocks, monitor.drift = clocks, DriftChecks(monitor)
    for loop in (monitor.clocks, monitor.drift):
        loop.start()
    return [monitor.clocks, monitor.drift]


def run(config: Config, host: str, port: int, state_dir: Path | None = None, remediator=None, web=None) -> None:
    """Check every bot once (resuming from the checkpoints in `state_dir`), then serve until SIGTERM/SIGINT;
    with `remediator` (an IntentClient) also publish tradingbot_paused from the remediator's pauses and, with
    remediation.fast_path, tell it each death the moment it happens."""
    import logging
    import time

    from botwatch.core import webconfig
    from botwatch.core.serve import bind, serve

    log = logging.getLogger("exporter")
    memory.tune()      # before the check threads start
    monitor = Monitor(config, checkpoints=Checkpoints(state_dir) if state_dir else None)
    web = web or webconfig.WebConfig()
    server = bind(webconfig.guard(create_app(monitor), web), host, port, "botwatch exporter", web=web)  # before the checks
    webconfig.say_openness(web, host, "botwatch exporter", ["/metrics", "/"])
    started = time.monotonic()
    monitor.run_once()
    log.info("first round of checks of %d bots took %.2fs", len(config.bots), time.monotonic() - started)
    monitor.start()
    looks = start_exchange_looks(monitor)
    feed = fast = None
    if remediator is not None:
        from botwatch.exporter.pauses import PauseFeed
        feed = PauseFeed(monitor, remediator)
        feed.start()
        if config.remediation.fast_path:
            from botwatch.exporter.fastpath import FastPath
            fast = FastPath(monitor, lambda death: remediator.death(death.bot, death.at, death.detail, death.pid))
            fast.start()
    elif config.remediation.fast_path:
        log.info("no --remediator: deaths are found by the checks and restarted by TradingBotDown (no fast path)")

    def stop():
        for part in (feed, fast, *looks):
            if part is not None:
                part.stop()
        monitor.stop()

    serve(server, "botwatch exporter", on_stop=stop)
