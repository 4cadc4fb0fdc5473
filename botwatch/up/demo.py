"""The demo fleet of `botwatch up`: the brief's four paperbots, and with `--with-freqtrade` a real Freqtrade in
dry-run trading on the local exchange (botwatch.up.standins.localexchange), watched through `preset: freqtrade` like a
user's own."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path

from botwatch.core.files import write_atomic
from botwatch.core.serve import free_port
from botwatch.up.standins.localexchange import DEMO_STRATEGY, freqtrade_config

# name, strategy, seed, type: the brief's four demo bots
DEMO_BOTS = [
    ("doge-long", "long", 11, "spot"),
    ("doge-short", "short", 12, "spot"),
    ("btc-optimized", "long", 13, "futures"),
    ("hummingbot-mm", "mm", 14, "market-maker"),
]


class FreqtradeNotFound(Exception):
    """--with-freqtrade names no executable; the message says how to get one."""


def find_freqtrade(given: str) -> str:
    """The freqtrade executable: the path given, else `freqtrade` on PATH or in ./.venv-freqtrade."""
    for candidate in ([given] if given != "auto" else ["freqtrade", ".venv-freqtrade/bin/freqtrade"]):
        found = shutil.which(candidate)
        if found:
            return str(Path(found).resolve())
    raise FreqtradeNotFound(f"--with-freqtrade: no freqtrade at {given!r}: `make freqtrade` installs it into "
                            ".venv-freqtrade, or give its path")


def freqtrade_bot(state: Path, freqtrade: str, exchange_url: str, api_port: int) -> dict:
    """Write the demo Freqtrade's config, strategy and credentials under STATE/freqtrade; its bot entry."""
    folder = state / "freqtrade"
    (folder / "user_data").mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    write_atomic(folder / "api-auth", f"botwatch:{password}\n", private=True)
    write_atomic(folder / "strategies" / "botwatch_demo.py", DEMO_STRATEGY)
    db, log = folder / "tradesv3.dryrun.sqlite", folder / "freqtrade.log"
    config = freqtrade_config(exchange_url, api_port, f"sqlite:///{db}", "botwatch", password)
    config.update(user_data_dir=str(folder / "user_data"), strategy="BotwatchDemo",
                  strategy_path=str(folder / "strategies"))
    config_path = folder / "config.json"
    write_atomic(config_path, json.dumps(config, indent=2), private=True)   # it holds the API password
    return {"name": "ft-demo", "type": "spot", "preset": "freqtrade", "check_interval": 5,
            "process_cmdline": freqtrade_cmdline(config_path),     # this Freqtrade, no other
            "api_url": f"http://127.0.0.1:{api_port}", "api_auth_file": str(folder / "api-auth"),
            "data_file": str(db), "log_file": str(log), "starting_balance": 1000, "exchange": "binance",
            "start_command": [freqtrade, "trade", "--config", str(config_path), "--logfile", str(log)],
            "stop_timeout": "10s"}


def freqtrade_cmdline(config_path: Path) -> str:
    """The `process_cmdline` regex of a Freqtrade run with this config: `freqtrade trade … --config PATH`,
    never another program that merely names the file (`tail -f`, an editor)."""
    return rf"(^|/)freqtrade trade( .*)? --config {re.escape(str(config_path))}( |$)"


def demo_bots(state: Path, t: dict, botwatch: list[str]) -> list[dict]:
    """The brief's four demo paperbots at the stack's timings `t`, restartable by the remediator."""
    bots_dir = state / "bots"
    bots_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, strategy, seed, kind in DEMO_BOTS:
        port = free_port()
        files = {key: str(bots_dir / f"{name}.{ext}")
                 for key, ext in (("data_file", "csv"), ("journal", "jsonl"), ("pidfile", "pid"), ("log_file", "log"))}
        argv = botwatch + [
            "paperbot", "--name", name, "--strategy", strategy, "--seed", str(seed),
            "--trade-interval", str(t["trade_interval"]), "--health-port", str(port),
            "--data-file", files["data_file"], "--journal", files["journal"],
            "--pidfile", files["pidfile"], "--log-file", files["log_file"]]
        per_hour = 3600 / t["trade_interval"]
        entries.append({
            "name": name, "type": kind, "check_interval": t["check_interval"], "pidfile": files["pidfile"],
            "health_endpoint": f"http://127.0.0.1:{port}/health", **{k: v for k, v in files.items() if k != "pidfile"},
            "starting_balance": 1000,
            "expected_trades_per_hour": {"min": round(per_hour / 4), "max": round(per_hour * 4)},
            "stale_after": t["stale_after"], "start_command": argv,
        })
    return entries
