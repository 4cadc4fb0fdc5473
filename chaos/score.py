"""The chaos soak's score: what it reads back from the bots' files (trades, starts) and the one JSON line it
makes of a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from botwatch.core.presets import open_database
from botwatch.core.tradefile import validate_file
from botwatch.core.units import parse_duration
from chaos.faults import BOT_KINDS, SCRAPE, SERVICE_KINDS


def stamps(path: str) -> list[float]:
    try:
        return [float(line) for line in Path(path).read_text().split()]
    except (OSError, ValueError):
        return []

def csv_ids(path: str) -> list[str]:
    text = Path(path).read_text(errors="replace") if Path(path).exists() else ""
    return [line.split(",")[1] for line in text.splitlines()[1:] if "," in line]

def journal_ids(path: str) -> list[str]:
    text = Path(path).read_text() if Path(path).exists() else ""
    return [json.loads(line)["trade_id"] for line in text.splitlines() if line.strip()]

def closed_trades(db: str) -> dict[int, float] | None:
    """A Freqtrade database's closed trades (id -> profit), read only; None when it can't be read."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return dict(conn.execute("SELECT id, close_profit_abs FROM trades WHERE is_open = 0").fetchall())
    except sqlite3.Error:
        return None

def twice(db: str) -> int:
    """Trades a Freqtrade database holds more than once (the same pair opened at the same moment)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) - COUNT(DISTINCT pair || '@' || open_date) FROM trades").fetchone()[0]
    except sqlite3.Error:
        return 0


def score(soak, exit_code: int | None) -> dict:
    """The soak's one JSON line: faults healed, recovery times, trades lost or doubled, starts, uptime."""
    restarts = attribute_starts(soak)
    lost_end = duplicated_end = 0
    invalid = []
    for name, bot in soak.bots.items():
        if name == soak.ft:      # every trade botwatch mirrored is in the database, once
            mirror = soak.state / "remediator" / "mirror" / f"{name}.jsonl"
            mirrored = {json.loads(line)["trade_id"] for line in
                        (mirror.read_text().splitlines() if mirror.exists() else []) if line.strip()}
            lost_end += len(mirrored - set(closed_trades(bot["data_file"]) or {}))
            duplicated_end += twice(bot["data_file"])
            valid = open_database("freqtrade", bot["data_file"]).collect().valid
        else:
            journal, ids = journal_ids(bot["journal"]), csv_ids(bot["data_file"])
            duplicated_end += len(ids) - len(set(ids))
            lost_end += len(set(journal) - set(ids))
            valid = validate_file(bot["data_file"]).valid
        if not valid:
            invalid.append(name)
    recovery = {}
    for kind in BOT_KINDS + SERVICE_KINDS:
        times = sorted(f.healed - f.injected for f in soak.faults if f.kind == kind and f.healed)
        if times:
            recovery[kind] = {"n": len(times), "p50": round(_quantile(times, 0.5), 2),
                              "p95": round(_quantile(times, 0.95), 2), "max": round(times[-1], 2)}
    unhealed = [f.describe() for f in soak.faults if f.healed is None]
    trades = {"restores_checked": soak.restores_checked, "lost": soak.lost_at_restore + lost_end,
              "duplicated": soak.duplicated_at_restore + duplicated_end,
              "at_restore": {"lost": soak.lost_at_restore, "duplicated": soak.duplicated_at_restore},
              "at_end": {"lost": lost_end, "duplicated": duplicated_end, "invalid_files": invalid}}
    ok = (not unhealed and trades["lost"] == 0 and trades["duplicated"] == 0 and not invalid
          and restarts["duplicate"] == 0 and restarts["spurious"] == 0 and soak.http_5xx == 0 and exit_code == 0)
    by_kind = {kind: sum(f.kind == kind for f in soak.faults) for kind in BOT_KINDS + SERVICE_KINDS}
    return {"chaos": "soak", "seed": soak.seed, "duration_s": soak.duration, "ha": soak.ha, "bots": len(soak.bots),
            "ok": ok, "faults": {"injected": len(soak.faults), "healed": len(soak.faults) - len(unhealed),
                                 "by_kind": by_kind, "store_checks": sorted(
                                     f.extra["check"] for f in soak.faults if f.kind == "store"),
                                 "remediator_killed_mid_playbook": sum(bool(f.mid_playbook) for f in soak.faults),
                                 "unhealed": unhealed},
            "recovery_s": recovery, "trades": trades, "restarts": restarts, "http_5xx": soak.http_5xx,
            "uptime": uptime(soak), "stack_exit": exit_code,
            "start_s": {"paperbot": round(soak.restart_s["chaos-0"], 2),
                        **({"freqtrade": round(soak.restart_s[soak.ft], 2)} if soak.ft else {})}}

def attribute_starts(soak) -> dict:
    """Each bot start (its start command run) to the fault of that bot it followed, if any."""
    total = duplicate = spurious = expected = 0
    details = []
    for name, bot in soak.bots.items():
        starts = stamps(soak._mark(name, "starts"))[soak.baseline[name]:]
        total += len(starts)
        faults = sorted((f for f in soak.faults if f.target == name), key=lambda f: f.injected)
        for start in starts:
            owner = None
            for fault in faults:
                end = fault.healed if fault.healed is not None else float("inf")
                if fault.injected <= start <= end + 1:
                    owner = fault
            if owner is None:
                spurious += 1
                details.append({"bot": name, "at": round(start, 3), "fault": None})
            else:
                owner.starts += 1
        for fault in faults:
            expected += fault.expected_starts
            if fault.starts > fault.expected_starts:
                duplicate += fault.starts - fault.expected_starts
                details.append({"bot": name, "fault": fault.describe(), "starts": fault.starts})
    return {"total": total, "expected": expected, "duplicate": duplicate, "spurious": spurious,
            "odd": details[:20]}

def uptime(soak) -> dict:
    out = {}
    for name in soak.bots:
        samples = soak.samples[name]
        if len(samples) < 2:
            continue
        down = sum(b[0] - a[0] for a, b in zip(samples, samples[1:]) if not a[1])
        span = samples[-1][0] - samples[0][0]
        floor = sum(_floor(f.kind, soak.restart_s[name], soak.bots[name]) for f in soak.faults if f.target == name)
        out[name] = {"uptime": round(1 - down / span, 4), "down_s": round(down, 1), "floor_s": round(floor, 1)}
    return out


def _floor(kind: str, restart: float, bot: dict) -> float:
    """The downtime a fault makes unavoidable at these timings: the check that sees it (half an interval on
    average) and the one that confirms it, half a scrape and half an evaluation, then the restart itself;
    a frozen bot's checks each wait out the health timeout, and its stop waits stop_timeout for SIGTERM."""
    check = float(bot["check_interval"])
    health_timeout, stop_timeout = (parse_duration(str(bot.get(key, default))) for key, default in
                                    (("health_timeout", "5s"), ("stop_timeout", "10s")))
    detect = 1.5 * check + SCRAPE
    return {"bot-kill": detect + restart, "remediator-kill": detect + restart,
            "bot-stop": 0.5 * check + 2 * health_timeout + SCRAPE + stop_timeout + restart,
            "store": restart}.get(kind, 0.0)


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]
