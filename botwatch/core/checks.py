"""All checks of one bot, run together: liveness, health endpoint, trade file and P&L, log errors.

The exporter publishes `BotCheck.run()`'s results; the remediator verifies its actions with the same code.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from botwatch.core.book import BookSummary
from botwatch.core.config import ERROR_KINDS, Bot
from botwatch.core.liveness import Liveness, ProcessTable, probe_for
from botwatch.core.logtail import LogTail
from botwatch.core.freqtrade_api import FreqtradeAPI, LoopHealth
from botwatch.core.presets import open_store
from botwatch.core.tradefile import DataFileStatus

log = logging.getLogger(__name__)

HEALTHY_STATUSES = {"ok", "healthy", "up", "running", "pass", "alive", "pong"}   # pong: Freqtrade's ping
MAX_HEALTH_BODY = 64 * 1024


@dataclass(frozen=True)
class Health:
    up: bool
    latency: float
    detail: str
    marks: dict[str, float] = field(default_factory=dict)


def check_health(url: str, timeout: float, session: requests.Session | None = None,
                 symbols: list[str] | None = None) -> Health:
    """GET the health endpoint: up on a 2xx whose JSON `status`, if any, is a healthy word."""
    session = session or requests
    started = time.monotonic()
    try:
        response = session.get(url, timeout=timeout, stream=True, allow_redirects=False)
        body = response.raw.read(MAX_HEALTH_BODY, decode_content=True)
        response.close()
    except requests.RequestException as err:
        return Health(False, time.monotonic() - started, f"{url}: {type(err).__name__}")
    latency = time.monotonic() - started
    if not 200 <= response.status_code < 300:
        return Health(False, latency, f"{url}: HTTP {response.status_code}")
    payload = _json(body)
    status = payload.get("status") if isinstance(payload, dict) else None
    if isinstance(status, str) and status.lower() not in HEALTHY_STATUSES:
        return Health(False, latency, f"{url}: status {status[:40]!r}")
    return Health(True, latency, f"{url}: HTTP {response.status_code}", _marks(payload, symbols or []))


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _marks(payload, symbols: list[str]) -> dict[str, float]:
    """Mark prices from a health body: {"mark_price": 1.2} for a one-symbol bot, or {symbol: price}."""
    if not isinstance(payload, dict):
        return {}
    mark = payload.get("mark_price")
    if isinstance(mark, dict):
        return {str(k): float(v) for k, v in mark.items() if _finite(v)}
    if _finite(mark):
        symbol = payload.get("symbol")
        if isinstance(symbol, str):
            return {symbol: float(mark)}
        if len(symbols) == 1:
            return {symbols[0]: float(mark)}
    return {}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Aliveness:
    """What `tradingbot_up` says: liveness source and health endpoint together."""

    up: bool
    liveness: Liveness | None
    health: Health | None

    @property
    def detail(self) -> str:
        parts = [part.detail for part in (self.liveness, self.health) if part is not None]
        return "; ".join(parts)

    @property
    def pid(self) -> int | None:
        return self.liveness.pid if self.liveness else None

    @property
    def unknown(self) -> bool:
        """The runtime could not be asked (docker daemon away, systemctl failing): not up, and not down
        either. Nothing acts on it; BotwatchCheckUnknown tells the operator botwatch is blind."""
        return self.liveness is not None and self.liveness.error


def check_alive(bot: Bot, probe=None, session: requests.Session | None = None,
                symbols: list[str] | None = None) -> Aliveness:
    """Is the bot up, exactly as the exporter decides it: its liveness source and its health endpoint (for a
    preset bot with a liveness source, that source alone: its API is judged by TradingBotStuck)."""
    probe = probe if probe is not None else probe_for(bot)
    liveness = probe() if probe else None
    health = None
    if bot.health_endpoint:
        health = check_health(bot.health_endpoint, bot.health_timeout, session, symbols)
    if bot.kind.process_decides and liveness is not None:
        up = liveness.up       # its API failing while its process runs is TradingBotStuck, not down
    else:
        up = (liveness is None or liveness.up) and (health is None or health.up)
    return Aliveness(up, liveness, health)


def bot_api(bot: Bot, session: requests.Session | None = None) -> FreqtradeAPI | None:
    """The bot's own REST API, for a kind of bot that has one."""
    return bot.kind.api(bot, session)


def loop_trouble(bot: Bot, api: FreqtradeAPI | None, now: float) -> str | None:
    """What is wrong with a live bot's main loop by its own API, or by its log (stuck, or not running); None
    when well or when it can't tell."""
    return bot.kind.loop_trouble(bot, api, now)


@dataclass(frozen=True)
class BotStatus:
    """One round of checks of one bot."""

    bot: str
    checked_at: float
    duration: float
    up: bool
    liveness: Liveness | None
    health: Health | None
    datafile: DataFileStatus
    book: BookSummary
    api_errors: dict[str, int]
    down_checks: int                  # consecutive rounds that found it down, this one included (unknown skipped)
    errors: tuple[str, ...] = ()      # checks that could not tell (runtime unreachable): up is unknown
    loop: LoopHealth | None = None    # a preset bot's own word on its main loop and state (last known)
    down_since: float | None = None   # when this down episode began: its death event, else the first failed check
    equity_peak: float | None = None  # the highest equity within its drawdown_window (the exporter's, kept)


class BotCheck:
    """Keeps the incremental state of one bot's checks; `run()` does one round."""

    def __init__(self, bot: Bot, clock: Callable[[], float] = time.time, proc: Path = Path("/proc"),
                 docker_client: Callable | None = None, session: requests.Session | None = None,
                 processes: ProcessTable | None = None):
        self.bot = bot
        self.clock = clock
        kwargs = {"docker_client": docker_client} if docker_client else {}
        self.probe = probe_for(bot, proc, processes=processes, **kwargs)
        self.session = session or requests.Session()
        self.store = open_store(bot, clock)
        self.logtail = LogTail(bot.log_file, bot.error_patterns.compiled(), bot.name) if bot.log_file else None
        self.api = bot_api(bot, self.session)
        self.loop: LoopHealth | None = None
        self.loop_pid: int | None = None
        self.down_checks = 0
        self.down_since: float | None = None
        self._died_at: float | None = None

    def died(self, at: float) -> None:
        """Its process or container ended at `at` (a death event): the down episode the next check finds
        began then, not when the check ran."""
        self._died_at = at

    def run(self) -> BotStatus:
        started = time.monotonic()
        alive = check_alive(self.bot, self.probe, self.session, self.store.symbols())
        liveness, health, up = alive.liveness, alive.health, alive.up
        errors = ["liveness"] if alive.unknown else []
        if not alive.unknown:          # unknown is not down: it neither counts towards a restart nor resets it
            self.down_checks = 0 if up else self.down_checks + 1
            if up:
                self.down_since = None
            elif self.down_since is None:
                self.down_since = self._died_at or self.clock()
            self._died_at = None
        datafile = self.store.collect()
        if liveness is not None and liveness.pid != self.loop_pid:
            self.loop, self.loop_pid = None, liveness.pid    # a new process: the old one's loop time says nothing
        if self.api is not None and (health is None or health.up):
            self.loop = _merge(self.loop, self.api.loop_health())
        api_errors = self.logtail.collect() if self.logtail else dict.fromkeys(ERROR_KINDS, 0)
        if self.logtail is not None:
            self.loop = self.bot.kind.loop_from_log(self.logtail) or self.loop
        open_profit = self.loop.open_profit if self.loop else None
        marks = (health.marks if health else None) or (self.loop.marks if self.loop else None)
        book = self.store.summary(marks, open_profit)
        return BotStatus(self.bot.name, self.clock(), time.monotonic() - started, up, liveness, health,
                         datafile, book, api_errors, self.down_checks, tuple(errors), self.loop, self.down_since)

    def close(self) -> None:
        if self.logtail:
            self.logtail.close()
        self.session.close()


def _merge(known: LoopHealth | None, new: LoopHealth) -> LoopHealth:
    """What the API said now, else what it said last: a frozen bot's loop time must keep ageing."""
    if known is None:
        return new
    return LoopHealth(*(now if now is not None else before for now, before in zip(
        (new.last_loop, new.state, new.exchange, new.open_profit, new.marks),
        (known.last_loop, known.state, known.exchange, known.open_profit, known.marks))))
