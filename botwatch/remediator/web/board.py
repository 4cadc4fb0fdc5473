"""What the status page shows, gathered once for every viewer: each bot's row (state and since when, 24 h
and 7 d uptime, the last day's checks as a bar, last action, P&L, positions), the open incidents, the
pauses and maintenance windows, the hosts and their agents.

The ledger says what botwatch did and what holds a bot; Prometheus says what the checks saw. Prometheus
away or slow (a short timeout) leaves those columns "unknown", said as such, never "down".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from botwatch.remediator.actions.intake import DELIVERY_KEY
from botwatch.remediator.tell.report import PrometheusAPI, PrometheusError, by_bot, uptime_expr

FRESH_FOR = 5.0          # seconds one gathering serves every viewer (a page open on ten phones is one look)
SLOW_FOR = 60.0          # seconds the slow part (uptime, the bar, P&L's start: day-long queries) is kept
PROMETHEUS_TIMEOUT = 3.0
BAR_CELLS = 48           # the last day's checks in half hours
DAY = 86400.0


@dataclass
class Row:
    bot: str
    host: str
    runtime: str
    state: str                      # up, down, unknown, paused, maintenance, stopped
    says: str                       # the state in words, with who and why for a hold
    since: float | None = None      # when that state began, where known
    uptime_day: float | None = None
    uptime_week: float | None = None
    bar: list[float | None] = field(default_factory=list)   # share of checks up per cell, oldest first
    valid: float | None = None
    pnl: float | None = None
    pnl_pct: float | None = None
    positions: dict[str, float] = field(default_factory=dict)
    exposure: float | None = None       # Σ notional of the open positions, in `quote`
    unprotected: float | None = None    # the part without a stoploss known on the exchange
    quote: str = ""
    restarts: str = ""
    circuit_open: bool = False
    last_action: object = None      # the ledger's Action (commands about the bot left out)
    incidents: list[str] = field(default_factory=list)


@dataclass
class Board:
    at: float
    rows: list[Row]
    incidents: list[dict]
    holds: list[tuple[object, str, list[str]]]      # (pause, what it says, the bots it covers)
    hosts: list[tuple[str, str, float | None]]      # (host, where its agent is, last seen)
    jobs: str
    delivery: dict | None
    unknown: list[str]

    def row(self, bot: str) -> Row | None:
        return next((row for row in self.rows if row.bot == bot), None)


class Gatherer:
    """The board, gathered at most every FRESH_FOR seconds, whoever asks (one gathering at a time); what
    changes slowly (uptime, the bar, P&L's start) is asked of Prometheus at most every SLOW_FOR seconds."""

    def __init__(self, remediator, clock=time.monotonic):
        self.r, self.clock = remediator, clock      # the caches' age: this process's time, not the engine's
        self._board: Board | None = None
        self._slow: dict | None = None
        self._gathered = self._slowed = 0.0
        self._lock = threading.Lock()

    def board(self) -> Board:
        with self._lock:
            if self._board is None or self.clock() - self._gathered >= FRESH_FOR:
                now = self.r.clock()
                prom = PrometheusAPI(self.r.config.report.prometheus_url, timeout=PROMETHEUS_TIMEOUT)
                if self._slow is None or self.clock() - self._slowed >= SLOW_FOR:
                    self._slow, self._slowed = slow_look(prom, now), self.clock()
                self._board, self._gathered = gather(self.r, now, live_look(prom, now), self._slow), self.clock()
            return self._board

    def stale(self) -> None:
        """Something changed (an action from the page): the next look gathers again."""
        with self._lock:
            self._board = None


def live_look(prom: PrometheusAPI, now: float) -> dict:
    """What the checks say now: up, since when down, the data file, positions, equity."""
    seen: dict = {"up": {}, "down_since": {}, "valid": {}, "equity": {}, "positions": {}, "exposure": {},
                  "unprotected": {}, "quote": {}, "unknown": None}
    try:
        for name, expr in (("up", "tradingbot_up"), ("down_since", "tradingbot_down_since_seconds"),
                           ("valid", "tradingbot_data_file_valid"), ("equity", "tradingbot_equity"),
                           ("exposure", "tradingbot_exposure_quote"),
                           ("unprotected", "tradingbot_unprotected_exposure_quote")):
            seen[name] = by_bot(prom.query(expr, now))
        for labels, value in prom.query("tradingbot_position != 0", now):
            seen["positions"].setdefault(labels.get("bot"), {})[labels.get("symbol", "?")] = value
        for labels, _ in prom.query('tradingbot_info{quote!=""}', now):
            seen["quote"][labels.get("bot")] = labels["quote"]
    except PrometheusError as err:
        seen["unknown"] = f"{err}: what the checks see is unknown"
    return seen


def slow_look(prom: PrometheusAPI, now: float) -> dict:
    """What changes slowly: 24 h and 7 d uptime, the bar of the last day's checks, when an up bot was last
    seen down (within a day), and each bot's equity a day ago (or at its first sample since)."""
    seen: dict = {"day": {}, "week": {}, "bar": {}, "last_down": {}, "equity_then": {}, "unknown": None}
    step = DAY / BAR_CELLS
    try:
        seen["day"] = by_bot(prom.query(uptime_expr("24h"), now))
        seen["week"] = by_bot(prom.query(uptime_expr("7d"), now))
        seen["last_down"] = by_bot(prom.query("max_over_time(timestamp(tradingbot_up == 0)[1d:1m])", now))
        for bot, samples in by_bot(prom.query("tradingbot_equity[1d:1m]", now)).items():
            if samples:
                seen["equity_then"][bot] = float(samples[0][1])
        ends = [now - step * (BAR_CELLS - 1 - i) for i in range(BAR_CELLS)]
        cells = by_bot(prom.query_range(f"avg_over_time(tradingbot_up[{int(step)}s])", ends[0], ends[-1], step))
        for bot, values in cells.items():
            at = {round((t - ends[0]) / step): v for t, v in values}
            seen["bar"][bot] = [at.get(i) for i in range(BAR_CELLS)]
    except PrometheusError as err:
        seen["unknown"] = f"{err}: uptime and P&L unknown"
    return seen


def gather(r, now: float, live: dict, slow: dict) -> Board:
    config = r.config
    states = r.ledger.bot_states()
    incidents = r.ledger.open_incident_list()
    rows = []
    for bot in config.bots:
        state = states.get(bot.name)
        equity, then = live["equity"].get(bot.name), slow["equity_then"].get(bot.name)
        pnl = equity - then if equity is not None and then is not None else None
        row = Row(bot.name, bot.host, bot.runtime, *_state(r, bot.name, live, slow, state),
                  uptime_day=slow["day"].get(bot.name), uptime_week=slow["week"].get(bot.name),
                  bar=slow["bar"].get(bot.name, []), valid=live["valid"].get(bot.name), pnl=pnl,
                  pnl_pct=pnl / then * 100 if pnl is not None and then else None,
                  positions=live["positions"].get(bot.name, {}), exposure=live["exposure"].get(bot.name),
                  unprotected=live["unprotected"].get(bot.name), quote=live["quote"].get(bot.name, ""),
                  restarts=f"{state.attempts if state else 0}/{config.remediation.restarts}",
                  circuit_open=bool(state and state.circuit_open),
                  incidents=[i["alertname"] for i in incidents if i["bot"] == bot.name])
        last = [a for a in r.ledger.actions(bot=bot.name, limit=26) if a.playbook != "command"]
        row.last_action = last[0] if last else None
        rows.append(row)
    holds = [(p, r.pauses.says(p), r.pauses.covered(p)) for p in r.pauses.active()]
    agents = {agent.host: agent for agent in r.ledger.agents()}
    hosts = []
    for host in dict.fromkeys([*config.hosts, *agents]):
        agent = agents.get(host)
        where = "this remediator" if host == "local" else (agent.address if agent else "no agent yet")
        hosts.append((host, where, agent.last_seen if agent else None))
    jobs = ", ".join(f"{state} {count}" for state, count in r.ledger.job_counts().items())
    unknown = list(dict.fromkeys(u for u in (live["unknown"], slow["unknown"]) if u))
    return Board(now, rows, incidents, holds, hosts, jobs, r.ledger.get(DELIVERY_KEY), unknown)


def _state(r, bot: str, live: dict, slow: dict, state) -> tuple[str, str, float | None]:
    """(state, its words, since when): a hold first (what the operator decided), then what the checks say."""
    hold = r.pauses.holding(bot)
    if hold is not None:
        kind = {"operator_stop": "stopped", "maintenance": "maintenance"}.get(hold.reason, "paused")
        return kind, r.pauses.says(hold), hold.since
    up = live["up"].get(bot)
    if up == 0:
        return "down", "down", live["down_since"].get(bot)
    if up == 1:
        marks = [t for t in (slow["last_down"].get(bot), state.last_restart_at if state else None) if t]
        return "up", "up", max(marks) if marks else None
    return "unknown", "unknown: no recent check", None
