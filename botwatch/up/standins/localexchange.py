"""A local stand-in for a spot exchange's API (Binance's paths), for Freqtrade in dry-run offline and for
replaying an account's fills.

Public: what Freqtrade's ccxt asks for in dry-run: markets (`/api/v3/exchangeInfo`), the server time,
candles (`/api/v3/klines`) and the order book (`/api/v3/depth`). Prices are a deterministic random walk
per symbol that moves every second, so a strategy with a tight ROI opens and closes trades within
seconds. `auth_error` makes every answer Binance's -2015 (invalid API key), as an exchange does for a
revoked key.

Private: `/api/v3/myTrades`, an account's fills (`add_trade`), signed as Binance signs: the key in
`X-MBX-APIKEY`, an HMAC-SHA256 of the query string with the secret in `signature`. A wrong key gets
-2015, a wrong signature -1022, a window over 24 hours -1127, `limit` is capped at 1000, and
`rate_limit_next(n)` answers the next n private calls with 429 and a Retry-After (`ban` with 418).

Used by the tests and by `botwatch up --with-freqtrade`; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from urllib.parse import parse_qs, urlsplit

from botwatch.up.standins.localhttp import JSONHandler, LocalServer

SYMBOLS = {"BTCUSDT": ("BTC", "USDT", 90000.0), "ETHUSDT": ("ETH", "USDT", 3000.0)}
INTERVALS = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "1h": 3600}
AUTH_ERROR = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
DAY_MS = 24 * 3600 * 1000
ID_BASE = {"BTCUSDT": 3_000_000_001, "ETHUSDT": 1_500_000_001}     # trade ids: a sequence per symbol
SWING = 0.004       # the walk's step each second, as a fraction: a 0.2 % ROI is hit within seconds


def price_at(symbol: str, second: int) -> float:
    """The walk's price of `symbol` at a Unix second: the same for every caller, every time."""
    base = SYMBOLS[symbol][2]
    digest = hashlib.blake2b(f"{symbol}:{second // 600}".encode(), digest_size=8).digest()
    level = 1 + 0.02 * math.sin(int.from_bytes(digest, "big") % 628 / 100)    # slow drift per 10 minutes
    wiggle = SWING * math.sin(second * 1.7) + SWING * math.sin(second * 0.31)
    return round(base * level * (1 + wiggle), 2)


def kline(symbol: str, start: int, seconds: int) -> list:
    prices = [price_at(symbol, s) for s in range(start, start + seconds, max(1, seconds // 12))]
    close = price_at(symbol, min(start + seconds - 1, int(time.time())))
    return [start * 1000, f"{prices[0]:.2f}", f"{max(prices + [close]):.2f}", f"{min(prices + [close]):.2f}",
            f"{close:.2f}", "12.5", (start + seconds) * 1000 - 1, f"{close * 12.5:.2f}", 40, "6.0",
            f"{close * 6:.2f}", "0"]


def exchange_info() -> dict:
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "symbols": [
        {"symbol": symbol, "status": "TRADING", "baseAsset": base, "quoteAsset": quote, "baseAssetPrecision": 8,
         "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
         "isMarginTradingAllowed": False, "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
         "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
                      "tickSize": "0.01"},
                     {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
                     {"filterType": "NOTIONAL", "minNotional": "5.0", "maxNotional": "9000000.0"}]}
        for symbol, (base, quote, _) in SYMBOLS.items()]}


class LocalExchange:
    def __init__(self, port: int = 0, api_key: str = "botwatch-test-key", secret: str = "botwatch-test-secret"):
        self.auth_error = False
        self.clock_skew = 0.0                 # seconds its clock runs ahead of this host's (negative: behind)
        self.balances: dict[str, float] = {}  # the account's assets (free), as /api/v3/account answers them
        self.requests: dict[str, int] = {}
        self.api_key, self.secret = api_key, secret
        self.trades: list[dict] = []          # the account's fills, Binance's myTrades shape
        self.windows: list[tuple[int, int]] = []   # (startTime, endTime) of each myTrades call answered
        self.ban = False
        self._throttled, self._retry_after = 0, 1
        self._lock = threading.Lock()
        exchange = self

        class Handler(JSONHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with exchange._lock:
                    exchange.requests[url.path] = exchange.requests.get(url.path, 0) + 1
                if exchange.auth_error:
                    return self.send_json(401, AUTH_ERROR)
                if url.path == "/api/v3/myTrades":
                    return self.send_json(*exchange.private(url.query, self.headers.get("X-MBX-APIKEY")))
                if url.path == "/api/v3/account":
                    return self.send_json(*exchange.account(url.query, self.headers.get("X-MBX-APIKEY")))
                self.send_json(*exchange.answer(url.path, query))

        self.http = LocalServer(Handler, port, name="local-exchange")
        self.url = self.http.url

    # -- the account ------------------------------------------------------------------------------------

    def add_trade(self, symbol: str, time_ms: int, side: str, price: float, qty: float, commission: float = 0.0,
                  commission_asset: str | None = None) -> dict:
        """A fill of the account (ids count up per symbol, as Binance's do, each symbol in its own range)."""
        with self._lock:
            trade_id = ID_BASE[symbol] + sum(1 for t in self.trades if t["symbol"] == symbol)
            trade = {"symbol": symbol, "id": trade_id, "orderId": 7_000_000_000 + trade_id, "orderListId": -1,
                     "price": f"{price:.8f}", "qty": f"{qty:.8f}", "quoteQty": f"{price * qty:.8f}",
                     "commission": f"{commission:.8f}", "commissionAsset": commission_asset or SYMBOLS[symbol][1],
                     "time": int(time_ms), "isBuyer": side == "buy", "isMaker": True, "isBestMatch": True}
            self.trades.append(trade)
        return trade

    def rate_limit_next(self, calls: int, retry_after: int = 1) -> None:
        """Answer the next `calls` private requests with 429 and this Retry-After (seconds)."""
        self._throttled, self._retry_after = calls, retry_after

    def account(self, raw_query: str, api_key: str | None) -> tuple:
        """Binance's GET /api/v3/account, signed and inside recvWindow of this exchange's clock, or its error."""
        refused = self.refused(raw_query, api_key)
        if refused:
            return refused
        with self._lock:
            balances = [{"asset": asset, "free": f"{amount:.8f}", "locked": "0.00000000"}
                        for asset, amount in sorted(self.balances.items())]
        return 200, {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": False,
                     "canDeposit": False, "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"],
                     "updateTime": int(time.time() * 1000)}

    def refused(self, raw_query: str, api_key: str | None) -> tuple | None:
        """Why a signed request is refused (a ban, a throttle, the key, the signature, the time), or None."""
        if self.ban:
            return 418, {"code": -1003, "msg": "Way too many requests; IP banned."}, {"Retry-After": "120"}
        if self._throttled > 0:
            self._throttled -= 1
            return 429, {"code": -1003, "msg": "Too many requests; current limit is 1200 request weight."}, \
                {"Retry-After": str(self._retry_after)}
        if api_key != self.api_key:
            return 401, AUTH_ERROR
        unsigned, _, signature = raw_query.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        query = {k: v[0] for k, v in parse_qs(unsigned).items()}
        sent, window = int(query.get("timestamp", 0)), int(query.get("recvWindow", 5000))
        now = (time.time() + self.clock_skew) * 1000
        if sent > now + 1000 or now - sent > window:
            return 400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
        return None

    def private(self, raw_query: str, api_key: str | None) -> tuple:
        refused = self.refused(raw_query, api_key)
        if refused:
            return refused
        unsigned = raw_query.rpartition("&signature=")[0]
        query = {k: v[0] for k, v in parse_qs(unsigned).items()}
        symbol = query.get("symbol")
        if symbol not in SYMBOLS:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        now = int(time.time() * 1000)
        start, end = query.get("startTime"), query.get("endTime")
        start = int(start) if start else None
        end = int(end) if end else None
        if start is None and end is None:
            start, end = now - DAY_MS, now
        elif end is None:
            end = start + DAY_MS
        elif start is None:
            start = end - DAY_MS
        if end - start > DAY_MS:
            return 400, {"code": -1127, "msg": "More than 24 hours between startTime and endTime."}
        limit = min(int(query.get("limit", 500)), 1000)
        with self._lock:
            self.windows.append((start, end))
            found = sorted((t for t in self.trades if t["symbol"] == symbol and start <= t["time"] <= end),
                           key=lambda t: t["id"])[:limit]
        return 200, found

    def answer(self, path: str, query: dict) -> tuple[int, object]:
        now = int(time.time())
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": int((time.time() + self.clock_skew) * 1000)}
        if path == "/api/v3/exchangeInfo":
            return 200, exchange_info()
        symbol = query.get("symbol", "")
        if symbol not in SYMBOLS:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if path == "/api/v3/depth":
            price = price_at(symbol, now)
            return 200, {"lastUpdateId": now, "bids": [[f"{price * (1 - 0.0001 * i):.2f}", "5.0"] for i in range(1, 6)],
                         "asks": [[f"{price * (1 + 0.0001 * i):.2f}", "5.0"] for i in range(1, 6)]}
        if path == "/api/v3/klines":
            return 200, self.klines(symbol, query, now)
        return 404, {"code": -1, "msg": f"not served here: {path}"}

    def klines(self, symbol: str, query: dict, now: int) -> list:
        seconds = INTERVALS.get(query.get("interval", "1m"), 60)
        limit = min(int(query.get("limit", 500)), 1000)
        end = (now // seconds) * seconds
        start = int(query["startTime"]) // 1000 // seconds * seconds if "startTime" in query else \
            end - (limit - 1) * seconds
        return [kline(symbol, t, seconds) for t in range(start, min(end, start + (limit - 1) * seconds) + 1, seconds)]

    def close(self) -> None:
        self.http.close()


def freqtrade_config(exchange_url: str, api_port: int, db_url: str, user: str, password: str,
                     pairs: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")) -> dict:
    """A dry-run Freqtrade config whose ccxt talks to the local exchange and whose REST API is on."""
    return {
        "bot_name": "botwatch-demo", "dry_run": True, "dry_run_wallet": 1000, "trading_mode": "spot",
        "stake_currency": "USDT", "stake_amount": 100, "max_open_trades": 2, "timeframe": "1m",
        "initial_state": "running", "db_url": db_url,
        "entry_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exchange": {"name": "binance", "key": "", "secret": "", "pair_whitelist": list(pairs), "enable_ws": False,
                     "ccxt_config": {"urls": {"api": {"public": f"{exchange_url}/api/v3"}},
                                     "options": {"fetchMarkets": {"types": ["spot"]}}},
                     "ccxt_async_config": {"urls": {"api": {"public": f"{exchange_url}/api/v3"}},
                                           "options": {"fetchMarkets": {"types": ["spot"]}}}},
        "pairlists": [{"method": "StaticPairList"}],
        "api_server": {"enabled": True, "listen_ip_address": "127.0.0.1", "listen_port": api_port,
                       "username": user, "password": password, "jwt_secret_key": "botwatch-local-" + "x" * 32,
                       "ws_token": "botwatch-local-ws", "CORS_origins": []},
        "internals": {"process_throttle_secs": 1, "heartbeat_interval": 60},
    }


# The demo's strategy: always in the market, out at +0.2 % or -0.2 %; the walk makes that seconds.
DEMO_STRATEGY = '''
from freqtrade.strategy import IStrategy


class BotwatchDemo(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 0.002}
    stoploss = -0.002
    process_only_new_candles = False
    startup_candle_count = 5

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 0
        return dataframe
'''
