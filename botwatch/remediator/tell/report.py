"""The morning report: per bot uptime (with each restart), P&L over the window, actions, positions, status.

Numbers come from Prometheus' HTTP API (the recording rules where the window has one) and the
remediator's ledger, tabulated with pandas. Whatever is unreachable or missing is said in the report;
the report itself always goes out.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import requests

from botwatch.core import mixin
from botwatch.core.config import Config
from botwatch.core.units import format_duration
from botwatch.remediator.ledger import Action, Ledger
from botwatch.remediator.tell.notifier import escape

log = logging.getLogger(__name__)

RECORDED_WINDOWS = set(mixin.CONFIG["uptime_windows"])   # bot:tradingbot_uptime:ratio_<window> exists


class PrometheusError(Exception):
    pass


class PrometheusAPI:
    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def _get(self, path: str, params: dict):
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
            body = response.json()
        except (requests.RequestException, ValueError) as err:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {type(err).__name__}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict, object]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "matrix":
            return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict, list]]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]


@dataclass
class BotLine:
    bot: str
    host: str = "local"
    uptime: float | None = None
    up: float | None = None
    valid: float | None = None
    pnl: float | None = None
    pnl_pct: float | None = None
    equity: float | None = None
    positions: dict[str, float] = field(default_factory=dict)
    exposure: float | None = None       # Σ notional of its open positions, in `quote`
    unprotected: float | None = None    # the part without a stoploss known on the exchange
    quote: str = ""
    restarts: list[Action] = field(default_factory=list)
    circuit_open: bool = False
    paused: list[tuple[float, float | None, str]] = field(default_factory=list)   # (from, to or None, why)
    paused_now: str | None = None


@dataclass
class Report:
    title: str
    text: str
    frame: pd.DataFrame
    chart: bytes | None
    unknown: list[str]


def by_bot(rows) -> dict[str, object]:
    return {labels.get("bot"): value for labels, value in rows if labels.get("bot")}


def uptime_expr(window: str) -> str:
    """Uptime over the window, paused time left out (bot:tradingbot_up:unpaused, the mixin's); for data from
    before that rule (or a backfill without it), every sample."""
    unpaused = f"avg_over_time(bot:tradingbot_up:unpaused[{window}]) or avg_over_time(tradingbot_up[{window}])"
    if window in RECORDED_WINDOWS:
        return f"bot:tradingbot_uptime:ratio_{window} or {unpaused}"
    return unpaused


def collect(config: Config, prom: PrometheusAPI, ledger: Ledger | None, window: float, now: float,
            unreachable: set[str] | None = None) -> tuple[list[BotLine], list[str]]:
    """Per-bot lines and what could not be known; the hosts down now (BotwatchHostDown) go in `unreachable`."""
    unreachable = set() if unreachable is None else unreachable
    lines = {bot.name: BotLine(bot.name, bot.host) for bot in config.bots}
    unknown: list[str] = []
    span = format_duration(window)
    try:
        for bot, value in by_bot(prom.query(uptime_expr(span), now)).items():
            if bot in lines:
                lines[bot].uptime = value
        for bot, value in by_bot(prom.query("tradingbot_up", now)).items():
            if bot in lines:
                lines[bot].up = value
        for bot, value in by_bot(prom.query("tradingbot_data_file_valid", now)).items():
            if bot in lines:
                lines[bot].valid = value
        for bot, samples in by_bot(prom.query(f"tradingbot_equity[{span}]", now)).items():
            if bot in lines and samples:
                first, last = samples[0][1], samples[-1][1]
                lines[bot].equity = last
                lines[bot].pnl = last - first
                lines[bot].pnl_pct = (last - first) / first * 100 if first else None
        for labels, value in prom.query("tradingbot_position != 0", now):
            if labels.get("bot") in lines:
                lines[labels["bot"]].positions[labels.get("symbol", "?")] = value
        for name, expr in (("exposure", "tradingbot_exposure_quote"),
                           ("unprotected", "tradingbot_unprotected_exposure_quote")):
            for bot, value in by_bot(prom.query(expr, now)).items():
                if bot in lines:
                    setattr(lines[bot], name, value)
        for labels, _ in prom.query('tradingbot_info{quote!=""}', now):
            if labels.get("bot") in lines:
                lines[labels["bot"]].quote = labels["quote"]
        for bot, value in by_bot(prom.query("botwatch_circuit_open", now)).items():
            if bot in lines:
                lines[bot].circuit_open = value == 1
        for labels, _ in prom.query('ALERTS{alertname="BotwatchHostDown",alertstate="firing"}', now):
            if labels.get("host") in config.hosts:      # another config's hosts are not this report's
                unreachable.add(labels["host"])
    except PrometheusError as err:
        unknown.append(f"{err}: uptime, P&L and positions unknown")
    if ledger is not None:
        for action in ledger.actions(since=now - window, limit=10000):
            if action.bot in lines and action.playbook == "restart" and action.outcome in ("success", "failed"):
                lines[action.bot].restarts.append(action)
            if action.bot in lines and action.outcome == "gave_up":
                lines[action.bot].circuit_open = True
        _paused(config, ledger, lines, now - window, now)
    else:
        unknown.append("no remediator ledger here: actions unknown")
    return list(lines.values()), unknown


def _paused(config: Config, ledger: Ledger, lines: dict[str, BotLine], start: float, now: float) -> None:
    """Each bot's paused time within the window, and what holds it now (the ledger's pauses)."""
    from botwatch.remediator.ledger.holds import Holds
    for pause in Holds(ledger).since(start):
        end = min(x for x in (pause.ended_at, pause.until, now) if x is not None)
        if end <= pause.since:
            continue
        why = {"pause": pause.comment, "maintenance": f"maintenance '{pause.comment}'",
               "operator_stop": f"stopped by its operator ({pause.comment})"}[pause.reason]
        for bot in config.bots:
            if bot.name in lines and pause.covers(bot.name, bot.host):
                lines[bot.name].paused.append((max(pause.since, start), None if pause.active(now) else end, why))
                if pause.active(now) and lines[bot.name].paused_now is None:
                    lines[bot.name].paused_now = why


def _exposure(line: BotLine) -> str:
    """" — 1840.00 USDT, 840.00 without a known stoploss on the exchange" (what the exporter valued it at)."""
    if not line.exposure:
        return ""
    quote = f" {escape(line.quote)}" if line.quote else ""
    unprotected = (f", {line.unprotected:.2f} without a known stoploss on the exchange" if line.unprotected
                   else ", each with a stoploss on the exchange")
    return f" — {line.exposure:.2f}{quote}{unprotected}"


def _reason(action: Action) -> str:
    detail = action.detail or ""
    if "OOM" in detail:
        return "memory limit"
    if action.alertname:
        return {"TradingBotDown": "down"}.get(action.alertname, action.alertname)
    return "by hand"


def _pct(value: float | None) -> str:
    return "unknown" if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def _money(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{'+' if value >= 0 else '-'}${abs(value):,.2f}"


def _by_host(lines: list[BotLine]) -> list[tuple[str | None, list[BotLine]]]:
    """The lines under their hosts, in the config's order; one group without a heading on one machine."""
    hosts = list(dict.fromkeys(l.host for l in lines))
    if len(hosts) <= 1:
        return [(None, lines)]
    return [(host, [l for l in lines if l.host == host]) for host in hosts]


def render(config: Config, lines: list[BotLine], unknown: list[str], actions: list[Action], window: float,
           now: float, unreachable: set[str] = frozenset(), verbs: dict[str, str] | None = None
           ) -> tuple[str, pd.DataFrame]:
    """The report's text; `verbs` says each playbook's runs (the playbook registry's VERBS); one it does not
    name is said by its name, never dropped."""
    verbs = verbs or {}
    zone = ZoneInfo(config.report.timezone)
    local = lambda ts: datetime.fromtimestamp(ts, zone)  # noqa: E731
    frame = pd.DataFrame([{"host": l.host, "bot": l.bot, "uptime": l.uptime, "up": l.up, "valid": l.valid,
                           "pnl": l.pnl, "pnl_pct": l.pnl_pct, "equity": l.equity, "restarts": len(l.restarts)}
                          for l in lines])
    span = format_duration(window)
    groups = _by_host(lines)
    out = [f"🤖 <b>Bot Health Report - {local(now):%Y-%m-%d}</b>", "", f"<b>Uptime ({span}):</b>"]
    for host, group in groups:
        if host is not None:
            known = [l.uptime for l in group if l.uptime is not None and not math.isnan(l.uptime)]
            average = _pct(sum(known) / len(known)) if known else "unknown"
            out.append(f"<i>{escape(host)}</i>: {average} on average" + (" — unreachable now" if host in unreachable else ""))
        for l in group:
            restarts = ""
            if l.restarts:
                times = ", ".join(f"{local(a.started_at or a.run_at):%H:%M}" for a in sorted(l.restarts, key=lambda a: a.id))
                restarts = f" ({len(l.restarts)} restart{'s' if len(l.restarts) > 1 else ''} at {times})"
            paused = "; ".join(f"paused {local(start):%H:%M}–{'now' if end is None else format(local(end), '%H:%M')}, "
                               f"{why}" for start, end, why in l.paused)
            out.append(f"- {escape(l.bot)}: {_pct(l.uptime)}{restarts}" + (f" ({escape(paused)}; not counted)"
                                                                          if paused else ""))
    out += ["", "<b>P&amp;L:</b>"]
    for host, group in groups:
        if host is not None:
            known = [l.pnl for l in group if l.pnl is not None]
            out.append(f"<i>{escape(host)}</i>: {_money(sum(known)) if known else 'no data'}")
        for l in group:
            pct = f" ({'+' if l.pnl_pct >= 0 else ''}{l.pnl_pct:.1f}%)" if l.pnl_pct is not None else ""
            out.append(f"- {escape(l.bot)}: {_money(l.pnl)}{pct}")
    out += ["", "<b>Actions Taken:</b>"]
    shown = [a for a in actions if a.playbook in mixin.CONFIG["playbooks"].values()
             and a.outcome not in (None, "skipped", "held", "cancelled")]
    if not shown:
        out.append("- none")
    for a in sorted(shown, key=lambda a: a.id):
        verb = verbs.get(a.playbook) or f"Ran {a.playbook} for"
        result = "" if a.outcome == "success" else f" — {a.outcome}"
        out.append(f"- {local(a.started_at or a.run_at):%H:%M}: {verb} {escape(a.bot)} ({escape(_reason(a))}){result}")
    out += ["", "<b>Current Positions:</b>"]
    held = [l for l in lines if l.positions]
    out += [f"- {escape(l.bot)}: " + ", ".join(f"{q:+g} {escape(s)}" for s, q in sorted(l.positions.items()))
            + _exposure(l) for l in held] or ["- all flat"]
    out.append("")
    problems = [f"{host} unreachable (its agent is down)" for host in sorted(unreachable)]
    for l in lines:
        if l.host in unreachable:
            continue            # said once for the host; its bots' figures are stale
        if l.paused_now:
            continue            # the operator's decision, not a problem: said in the uptime line
        if l.circuit_open:
            problems.append(f"{l.bot} held (automatic restarts stopped)")
        elif l.up == 0:
            problems.append(f"{l.bot} down")
        elif l.up is None and not unknown:
            problems.append(f"{l.bot} no data")
        if l.valid == 0:
            problems.append(f"{l.bot} trade file corrupt")
    if unknown:
        out += [f"⚠️ {escape(u)}" for u in unknown]
    if problems:
        out.append("Current Status: ⚠️ " + escape("; ".join(problems)))
    elif unknown:
        out.append("Current Status: ❔ unknown")
    else:
        out.append("Current Status: ✅ All bots operational")
    return "\n".join(out), frame


def chart(prom: PrometheusAPI, config: Config, window: float, now: float) -> bytes | None:
    """A PNG: each bot's equity over the window, with its down time shaded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(15.0, window / 500)
    try:
        equity = by_bot(prom.query_range("tradingbot_equity", now - window, now, step))
        up = by_bot(prom.query_range("tradingbot_up", now - window, now, step))
    except PrometheusError:
        return None
    bots = [bot.name for bot in config.bots]
    fig, axes = plt.subplots(len(bots), 1, figsize=(8, 1.8 * len(bots) + 0.6), sharex=True, squeeze=False)
    for ax, bot in zip(axes[:, 0], bots):
        series = equity.get(bot) or []
        if series:
            frame = pd.DataFrame(series, columns=["t", "equity"])
            frame["t"] = pd.to_datetime(frame["t"], unit="s")
            ax.plot(frame["t"], frame["equity"], linewidth=1.2)
        for t, v in up.get(bot) or []:
            if v == 0:
                ax.axvspan(pd.to_datetime(t - step / 2, unit="s"), pd.to_datetime(t + step / 2, unit="s"),
                           color="red", alpha=0.25, linewidth=0)
        ax.set_ylabel(bot, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=7)
        if not series:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8)
    axes[0, 0].set_title(f"Equity and downtime (red), last {format_duration(window)}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def build_report(config: Config, prom_url: str, ledger: Ledger | None, window: float = 86400,
                 now: float | None = None, verbs: dict[str, str] | None = None) -> Report:
    now = time.time() if now is None else now
    prom = PrometheusAPI(prom_url)
    unreachable: set[str] = set()
    lines, unknown = collect(config, prom, ledger, window, now, unreachable)
    actions = ledger.actions(since=now - window, limit=10000) if ledger is not None else []
    text, frame = render(config, lines, unknown, [a for a in actions if a.bot in {b.name for b in config.bots}],
                         window, now, unreachable, verbs)
    png = None
    if not any("unreachable" in u for u in unknown):
        try:
            png = chart(prom, config, window, now)
        except Exception:  # a chart is a nicety: the text goes out without it
            log.exception("the report chart failed")
    return Report(text.split("\n", 1)[0], text, frame, png, unknown)


def open_ledger(data_dir: Path) -> Ledger | None:
    path = Path(data_dir) / "ledger.sqlite3"
    return Ledger(path) if path.exists() else None


def write_files(report: Report, folder: Path) -> tuple[Path, Path | None]:
    """The report's text and chart side by side (what --dry-run shows)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    text_path = folder / f"report-{stamp}.txt"
    text_path.write_text(report.text + "\n", encoding="utf-8")
    png_path = None
    if report.chart:
        png_path = folder / f"report-{stamp}.png"
        png_path.write_bytes(report.chart)
    return text_path, png_path
