"""paperbot: a deterministic simulated paper-trading bot, the demo and test subject of botwatch.

It stands alone like a user's bot: it imports nothing of botwatch. Each fill is written to the journal
(JSONL, flushed and fsynced) and then appended to the trade CSV; `GET /health` answers JSON. It resumes
its position and trade numbering from the journal when restarted, finishing a CSV write a kill cut off
between the two writes, and misbehaves on cue.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COLUMNS = ("timestamp", "trade_id", "symbol", "side", "price", "qty", "fee")
HEADER = ",".join(COLUMNS)
FEE_RATE = 0.001
START_PRICES = {"BTC": 60000.0, "ETH": 3000.0, "DOGE": 0.15, "SOL": 150.0}

log = logging.getLogger("paperbot")


def default_symbol(name: str) -> str:
    for base in START_PRICES:
        if base.lower() in name.lower():
            return f"{base}/USDT"
    return "ETH/USDT"


class Market:
    """A seeded random walk; the same seed and step count give the same price."""

    def __init__(self, seed: int, start: float, volatility: float = 0.002):
        self.rng = random.Random(seed)
        self.price = start
        self.volatility = volatility

    def step(self) -> float:
        self.price *= 1.0 + self.rng.gauss(0.0, self.volatility)
        return self.price


class Strategy:
    """Decides each fill's side and size from the position: long-only, short-only, or market-making."""

    def __init__(self, kind: str, rng: random.Random, unit: float, max_units: int = 5):
        self.kind, self.rng, self.unit, self.max_units = kind, rng, unit, max_units

    def decide(self, position: float) -> tuple[str, float]:
        units = round(abs(position) / self.unit)
        if self.kind == "mm":
            if units >= self.max_units:
                side = "sell" if position > 0 else "buy"
            else:
                side = self.rng.choice(("buy", "sell"))
            return side, self.unit
        opening, closing = ("buy", "sell") if self.kind == "long" else ("sell", "buy")
        if units == 0 or (units < self.max_units and self.rng.random() < 0.6):
            return opening, self.unit
        # take profit or cut: close one unit or the whole position
        return closing, self.unit if self.rng.random() < 0.5 else abs(position)


class PaperBot:
    def __init__(self, args):
        self.args = args
        self.name = args.name
        self.symbol = args.symbol or default_symbol(args.name)
        base = self.symbol.split("/")[0]
        start = START_PRICES.get(base, 100.0)
        self.unit = round(max(1e-4, 100.0 / start), 6)   # about 100 USDT a fill
        self.trades = 0
        self.position = 0.0
        self.avg_entry = 0.0
        self.realized = 0.0
        self.last_trade_ts: float | None = None
        self.started = time.time()
        self.state = "trading"
        self.stopping = False   # set by the signal handler: a plain flag, since a handler must not take locks
        self.lock = threading.Lock()
        self._resume()
        self.market = Market(args.seed * 1_000_003 + self.trades, self.last_price or start)
        self.strategy = Strategy(args.strategy, random.Random(args.seed * 7919 + self.trades), self.unit)

    # -- persistence -------------------------------------------------------------------------------

    def _resume(self) -> None:
        """Rebuild position and numbering from the journal, the bot's own record of its fills."""
        self.last_price = None
        path = Path(self.args.journal)
        if not path.exists():
            return
        with path.open(encoding="utf-8") as journal:
            for line in journal:
                try:
                    fill = json.loads(line)
                    self._book(fill["side"], float(fill["price"]), float(fill["qty"]), float(fill["fee"]))
                    self.last_price = float(fill["price"])
                    self.last_trade_ts = datetime.fromisoformat(fill["timestamp"]).timestamp()
                except (ValueError, KeyError, TypeError):
                    log.warning("journal line %d unreadable; skipped", self.trades + 1)
                    continue
        log.info("resumed from journal: %d fills, position %g", self.trades, self.position)

    def _book(self, side: str, price: float, qty: float, fee: float) -> None:
        self.trades += 1
        signed = qty if side == "buy" else -qty
        self.realized -= fee
        if self.position == 0 or (self.position > 0) == (signed > 0):
            total = abs(self.position) + qty
            self.avg_entry = (self.avg_entry * abs(self.position) + price * qty) / total
        else:
            closed = min(qty, abs(self.position))
            self.realized += (price - self.avg_entry) * closed * (1 if self.position > 0 else -1)
            if qty > abs(self.position) + 1e-12:
                self.avg_entry = price
        self.position = round(self.position + signed, 10)
        if self.position == 0:
            self.avg_entry = 0.0

    def _catch_up_csv(self) -> None:
        """A kill between the journal write and the CSV row leaves the journal a fill ahead: append the fills
        the CSV misses, if its last row is one the journal has. Anything else (a torn or damaged last row,
        a header-only or missing file) is left for the monitor to judge."""
        journal, csv_path = Path(self.args.journal), Path(self.args.data_file)
        try:
            with csv_path.open("rb") as data:
                data.seek(max(0, data.seek(0, os.SEEK_END) - 4096))
                tail = data.read()
            lines = journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []
        except OSError:
            return
        if not tail.endswith(b"\n") or not lines:
            return
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("utf-8", "replace").split(",")
        if len(last) != 7 or last[0] == "timestamp":
            return
        for back, line in enumerate(reversed(lines)):
            try:
                fill = json.loads(line)
            except ValueError:
                return
            if fill.get("trade_id") == last[1]:
                break
        else:
            return
        try:
            missing = [json.loads(line) for line in lines[len(lines) - back:]]
            rows = [",".join(fill[k] for k in COLUMNS) + "\n" for fill in missing]
        except (ValueError, KeyError, TypeError):
            return
        if missing:
            with csv_path.open("a", encoding="utf-8") as data:
                data.writelines(rows)
            log.warning("the journal was %d fill(s) ahead of the data file: appended %s", len(missing),
                        ", ".join(fill["trade_id"] for fill in missing))

    def _write_fill(self, fill: dict) -> None:
        journal_line = json.dumps(fill, separators=(",", ":")) + "\n"
        with open(self.args.journal, "a", encoding="utf-8") as journal:
            journal.write(journal_line)
            journal.flush()
            os.fsync(journal.fileno())
        csv_path = Path(self.args.data_file)
        row = ",".join(fill[k] for k in COLUMNS)
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        with csv_path.open("a", encoding="utf-8") as data:
            data.write((HEADER + "\n" if new else "") + row + "\n")

    # -- trading -----------------------------------------------------------------------------------

    def trade_once(self) -> None:
        price = self.market.step()
        side, qty = self.strategy.decide(self.position)
        qty = round(qty, 6)
        fee = price * qty * FEE_RATE
        now = datetime.now(timezone.utc)
        fill = {
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "trade_id": f"{self.name}-{self.trades + 1:08d}",
            "symbol": self.symbol,
            "side": side,
            "price": f"{price:.8g}",
            "qty": f"{qty:.6f}",
            "fee": f"{fee:.8f}",
        }
        self._write_fill(fill)
        with self.lock:
            self._book(side, float(fill["price"]), qty, float(fill["fee"]))
            self.last_price = float(fill["price"])
            self.last_trade_ts = now.timestamp()
        log.info("fill %s %s %s %s @ %s", fill["trade_id"], side, fill["qty"], self.symbol, fill["price"])

    def run(self) -> int:
        args = self.args
        if not Path(args.data_file).exists():
            Path(args.data_file).write_text(HEADER + "\n", encoding="utf-8")
        self._catch_up_csv()
        while self._pause(args.trade_interval):
            done = self.trades
            if args.exit_after is not None and done >= args.exit_after:
                log.error("exit-after %d reached: exiting", args.exit_after)
                return 1
            if args.auth_errors_after is not None and done >= args.auth_errors_after:
                self.state = "auth-failing"
                log.error('binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}')
                continue
            if args.hang_after is not None and done >= args.hang_after:
                if self.state != "hung":
                    log.warning("hang-after %d reached: no more trades", args.hang_after)
                self.state = "hung"
                continue
            self.trade_once()
        return 0

    def _pause(self, seconds: float) -> bool:
        """Sleep until the next fill; False once a stop was asked for (checked every 0.1 s)."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.1, left))
        return False

    def health(self) -> dict:
        with self.lock:
            mark = self.market.price
            unrealized = (mark - self.avg_entry) * self.position if self.position else 0.0
            return {
                "status": "ok",
                "name": self.name,
                "pid": os.getpid(),
                "state": self.state,
                "symbol": self.symbol,
                "trades": self.trades,
                "last_trade_ts": self.last_trade_ts,
                "position": self.position,
                "avg_entry": self.avg_entry,
                "mark_price": mark,
                "realized_pnl": self.realized,
                "equity": self.args.starting_balance + self.realized + unrealized,
                "uptime_seconds": round(time.time() - self.started, 3),
            }


def serve_health(bot: PaperBot, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/health":
                self.send_error(404)
                return
            body = json.dumps(bot.health()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="botwatch paperbot", description="A deterministic paper-trading demo bot.")
    p.add_argument("--name", required=True)
    p.add_argument("--data-file", required=True, help="trade CSV it appends to")
    p.add_argument("--journal", required=True, help="JSONL journal, written before the CSV")
    p.add_argument("--health-port", type=int, required=True)
    p.add_argument("--health-host", default="127.0.0.1", help="address the health endpoint listens on "
                   "(0.0.0.0 in a container watched from another)")
    p.add_argument("--pidfile", required=True)
    p.add_argument("--log-file", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--trade-interval", type=float, default=5.0, help="seconds between fills")
    p.add_argument("--strategy", choices=("long", "short", "mm"), default="long")
    p.add_argument("--symbol", help="default: from the name (doge -> DOGE/USDT, btc -> BTC/USDT)")
    p.add_argument("--starting-balance", type=float, default=1000.0)
    p.add_argument("--exit-after", type=int, help="exit with status 1 after N fills in total")
    p.add_argument("--hang-after", type=int, help="stop trading after N fills, staying alive and healthy")
    p.add_argument("--auth-errors-after", type=int, help="after N fills, log API-key errors instead of trading")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        for path in (args.data_file, args.journal, args.pidfile, args.log_file):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(filename=args.log_file, level=logging.INFO,
                            format="%(asctime)s %(levelname)s paperbot[%(process)d] %(message)s")
        bot = PaperBot(args)
    except OSError as err:
        print(f"paperbot {args.name}: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2

    def stop(signum, _frame):
        # only a flag: logging or Event.set() here could deadlock on a lock the interrupted code holds
        bot.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server = serve_health(bot, args.health_port, args.health_host)
    except OSError as err:
        print(f"paperbot {args.name}: cannot listen on {args.health_host}:{args.health_port}: {err}", file=sys.stderr)
        return 2
    Path(args.pidfile).write_text(f"{os.getpid()}\n")
    log.info("started: %s %s, health on %s:%d", args.strategy, bot.symbol, args.health_host, args.health_port)
    try:
        return bot.run()
    finally:
        if bot.stopping:
            log.info("stop signal received: stopping")
        server.shutdown()
        try:
            if Path(args.pidfile).read_text().strip() == str(os.getpid()):
                Path(args.pidfile).unlink()
        except OSError:
            pass
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
