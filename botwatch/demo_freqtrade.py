"""`botwatch up --with-freqtrade`: a real Freqtrade in dry-run beside the demo bots, trading on the local
exchange (botwatch.localexchange) and watched through `preset: freqtrade` like a user's own."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

from botwatch.core.files import write_atomic
from botwatch.localexchange import DEMO_STRATEGY, freqtrade_config


def find_freqtrade(given: str) -> str:
    """The freqtrade executable: the path given, else `freqtrade` on PATH or in ./.venv-freqtrade."""
    for candidate in ([given] if given != "auto" else ["freqtrade", ".venv-freqtrade/bin/freqtrade"]):
        found = shutil.which(candidate)
        if found:
            return str(Path(found).resolve())
    raise FileNotFoundError(f"--with-freqtrade: no freqtrade at {given!r}: `make freqtrade` installs it into "
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
            "process_name": str(config_path),        # an exact argv element: this Freqtrade, no other
            "api_url": f"http://127.0.0.1:{api_port}", "api_auth_file": str(folder / "api-auth"),
            "data_file": str(db), "log_file": str(log), "starting_balance": 1000, "exchange": "binance",
            "start_command": [freqtrade, "trade", "--config", str(config_path), "--logfile", str(log)],
            "stop_timeout": "10s"}
