"""Freqtrade's REST API, as far as botwatch reads it: loop health, state, open-trade profit, fills, start.

Every endpoint but `/api/v1/ping` takes HTTP Basic credentials, read from `api_auth_file` ("user:password",
one line) and never from the config itself. A call that fails answers None: the caller keeps what it
knew, and liveness is judged by the process and the ping, not by these.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import requests

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024


class AuthFileError(Exception):
    """api_auth_file can't be used; the message says what to fix."""


def read_auth(path: Path | None) -> tuple[str, str] | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text().strip()
    except OSError as err:
        raise AuthFileError(f"api_auth_file {path}: {err.strerror}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or "\n" in text:
        raise AuthFileError(f"api_auth_file {path}: expected one line user:password")
    return user, password


@dataclass(frozen=True)
class LoopHealth:
    last_loop: float | None        # Unix seconds Freqtrade last finished its main loop
    state: str | None              # running, stopped, paused, reload_config (lower case)
    exchange: str | None
    open_profit: float | None      # Σ profit_abs of open trades, in the stake currency
    marks: dict[str, float] | None = None     # each open trade's pair -> its current_rate (Freqtrade's price)


class FreqtradeAPI:
    def __init__(self, base_url: str, auth_file: Path | None = None, timeout: float = 5.0,
                 session: requests.Session | None = None):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.auth_file = auth_file
        self.timeout = timeout
        self.session = session or requests.Session()

    def _auth(self) -> tuple[str, str] | None:
        try:
            return read_auth(self.auth_file)      # read each time: a rotated password needs no restart
        except AuthFileError as err:
            log.warning("%s", err)
            return None

    def get(self, endpoint: str, **params):
        """The JSON answer of GET endpoint, or None when the bot did not give one."""
        try:
            with self.session.get(f"{self.base}/{endpoint}", params=params or None, auth=self._auth(),
                                  timeout=self.timeout, allow_redirects=False, stream=True) as response:
                body = response.raw.read(MAX_BODY + 1, decode_content=True)   # never more than MAX_BODY kept
        except (requests.RequestException, OSError) as err:
            log.debug("%s/%s: %s", self.base, endpoint, type(err).__name__)
            return None
        if response.status_code != 200 or len(body) > MAX_BODY:
            log.debug("%s/%s: HTTP %s, %d bytes", self.base, endpoint, response.status_code, len(body))
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def post(self, endpoint: str) -> dict | None:
        try:
            response = self.session.post(f"{self.base}/{endpoint}", auth=self._auth(), timeout=self.timeout,
                                         allow_redirects=False)
        except requests.RequestException:
            return None
        try:
            return response.json() if response.status_code == 200 else None
        except ValueError:
            return None

    def loop_health(self, open_profit: bool = True) -> LoopHealth:
        """Loop time, state and exchange; with `open_profit` also the open trades' profit (one call more)."""
        health = self.get("health")
        config = self.get("show_config")
        status = self.get("status") if open_profit else None
        last_loop = _number(health.get("last_process_ts")) if isinstance(health, dict) else None
        state = config.get("state") if isinstance(config, dict) else None
        exchange = config.get("exchange") if isinstance(config, dict) else None
        open_profit = marks = None
        if isinstance(status, list):
            trades = [t for t in status if isinstance(t, dict)]
            profits = [_number(t.get("profit_abs")) for t in trades]
            open_profit = sum(p for p in profits if p is not None)
            marks = {t["pair"]: _number(t.get("current_rate")) for t in trades if isinstance(t.get("pair"), str)
                     and (_number(t.get("current_rate")) or 0) > 0}
        return LoopHealth(last_loop, state.lower() if isinstance(state, str) else None,
                          exchange if isinstance(exchange, str) else None, open_profit, marks)

    def state(self) -> str | None:
        """running, stopped, paused or reload_config (GET /api/v1/show_config), or None when it did not say."""
        config = self.get("show_config")
        state = config.get("state") if isinstance(config, dict) else None
        return state.lower() if isinstance(state, str) else None

    def start(self) -> bool:
        """Ask a stopped bot to start trading again (POST /api/v1/start)."""
        return self.post("start") is not None

    def closed_trades(self, offset: int, limit: int = 500) -> tuple[list[dict], int] | None:
        """Closed trades with their orders, oldest first, from `offset` on, and how many there are in all
        (GET /api/v1/trades)."""
        answer = self.get("trades", limit=limit, offset=offset)
        trades = answer.get("trades") if isinstance(answer, dict) else None
        if not isinstance(trades, list):
            return None
        total = answer.get("total_trades")
        return [t for t in trades if isinstance(t, dict)], total if isinstance(total, int) else offset + len(trades)

    def profit(self) -> dict | None:
        answer = self.get("profit")
        return answer if isinstance(answer, dict) else None


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
