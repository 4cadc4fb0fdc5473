"""The botwatch config: its model, loading from YAML or JSON, and validation that names every problem.

`load_config(path)` returns a `Config` or raises `ConfigError`, whose `str()` lists each problem by its
path in the file (`bots[1].health_endpoint: ...`; config_problems.py words them). Relative paths resolve
against the file's folder. The keys are documented in docs/configuration.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from botwatch.core import mixin, presets
from botwatch.core.config_problems import ConfigError, duplicate_names, problems_of
from botwatch.core.maintenance import Maintenance
from botwatch.core.config_types import (COLUMNS, ERROR_KINDS, Argv, ArgvWithPid, ChatIds, ClockTime, DataFormat,
                                        DrawdownLimit, Duration, HttpUrl, NonEmpty, PositiveDuration, Regex, Size, Slug, Strict,
                                        TimeZone)

__all__ = ["COLUMNS", "ERROR_KINDS", "Bot", "Config", "ConfigError", "DataFormat", "config_from_mapping", "load_config",
           "parse_text", "warnings"]

# How a bot runs, by the liveness key its config gives; the probe (core/liveness.py) and the runtime that stops
# and starts it (remediator/runtimes.py) are tables keyed by the same names
RUNTIME_KEYS = {"process": ("process_name", "process_cmdline", "pidfile"), "docker": ("container",),
                "compose": ("compose_service",), "systemd": ("systemd_unit",)}
HEALTH_ONLY = "none"        # no liveness key: the health endpoint alone decides, and nothing can restart it
PROCESS = "process"         # the one runtime that needs a start_command to come back
LIVENESS_KEYS = tuple(key for keys in RUNTIME_KEYS.values() for key in keys)
BOT_TYPES = ("spot", "futures", "market-maker")
LOCAL_HOST = "local"   # a bot's host when the config names none: the machine botwatch itself runs on

# Patterns that catch the usual exchange and ccxt wording; a bot's `error_patterns` replaces a kind's list.
DEFAULT_ERROR_PATTERNS = {
    "auth": [
        r"(?i)invalid[ _-]?api[ _-]?key",
        r"(?i)api[ _-]?key[^\n]{0,40}(invalid|expired|revoked|disabled|not found)",
        r"(?i)\bAuthenticationError\b",
        r"(?i)(invalid|bad) signature|signature (is )?invalid|signature for this request",
        r"(?i)\b401\b[^\n]{0,40}unauthori[sz]ed|\bunauthori[sz]ed\b",
        r"(?i)\bPermissionDenied\b|permission denied for (this )?(api|action)",
    ],
    "rate_limit": [
        r"(?i)(?<![\w,.:])429(?![\w.,])",      # a status code, not a log's milliseconds (",429") or a price
        r"(?i)rate[ _-]?limit",
        r"(?i)too many requests",
        r"(?i)\bDDoSProtection\b|request weight",
    ],
    "other": [
        r"\b(ExchangeError|NetworkError|RequestTimeout|ExchangeNotAvailable|InvalidNonce|OrderNotFound)\b",
        r"(?i)\bapi error\b",
    ],
}


class TradeBounds(Strict):
    min: float = Field(default=0, ge=0)
    max: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max:g}) is below min ({self.min:g})")
        return self


class ErrorPatterns(Strict):
    auth: list[Regex] | None = None
    rate_limit: list[Regex] | None = None
    other: list[Regex] | None = None

    def compiled(self) -> dict[str, list[re.Pattern]]:
        """Each kind's patterns: the bot's own where given, else the defaults."""
        return {kind: [re.compile(p) for p in (getattr(self, kind) if getattr(self, kind) is not None
                                               else DEFAULT_ERROR_PATTERNS[kind])]
                for kind in ERROR_KINDS}


class Replay(Strict):
    """Where a restore may ask for fills the backup and the journal lack: the exchange itself (via ccxt)."""

    exchange: NonEmpty                     # a ccxt exchange id: binance, kraken, ...
    symbols: list[NonEmpty] | dict[NonEmpty, NonEmpty] = Field(min_length=1)   # unified symbols, or
                                           # {unified: as the bot's trade file writes it}
    credentials_file: Path                 # "apiKey:secret" on one line (a read-only key is enough)
    api_url: HttpUrl | None = None         # the exchange's REST base, for a testnet or a proxy
    margin: Duration = 600.0               # ask from this long before the backup was taken
    timeout: PositiveDuration = 30.0
    options: dict = Field(default_factory=dict)   # ccxt options, e.g. {fetchMarkets: {types: [spot]}}

    @model_validator(mode="after")
    def _known_exchange(self):
        import ccxt   # only where replay is configured: ccxt is large to import

        if self.exchange not in ccxt.exchanges:
            raise ValueError(f"exchange {self.exchange!r} is not a ccxt exchange id (e.g. binance, kraken, okx)")
        odd = [symbol for symbol in self.symbol_map() if "/" not in symbol]
        if odd:
            raise ValueError(f"symbols {odd} are not ccxt's unified BASE/QUOTE (e.g. BTC/USDT); map them to how "
                             "the bot writes them: {BTC/USDT: BTCUSDT}")
        return self

    def symbol_map(self) -> dict[str, str]:
        """unified symbol -> the symbol as the bot's own records spell it."""
        if isinstance(self.symbols, dict):
            return dict(self.symbols)
        return {symbol: symbol for symbol in self.symbols}


class Exchange(Strict):
    """What to do for every bot on one exchange together."""

    on_rate_limit: Argv | None = None      # run once per ExchangeRateLimited incident (no {pid}: not one bot's)


class Bot(Strict):
    name: Slug
    host: Slug = LOCAL_HOST                    # the machine it runs on: its agent acts on it (docs/operations.md, "Many hosts")
    type: Literal[BOT_TYPES] = "spot"
    check_interval: PositiveDuration = 60.0
    process_name: NonEmpty | None = None
    process_cmdline: Regex | None = None          # a regex on the whole command line, for bots only arguments tell apart
    pidfile: Path | None = None
    container: NonEmpty | None = None
    compose_service: NonEmpty | None = None
    compose_project: NonEmpty | None = None
    compose_file: Path | None = None
    systemd_unit: NonEmpty | None = None
    health_endpoint: HttpUrl | None = None
    health_timeout: PositiveDuration = 5.0
    data_file: Path
    data_format: DataFormat = Field(default_factory=DataFormat)
    journal: Path | None = None
    log_file: Path | None = None
    error_patterns: ErrorPatterns = Field(default_factory=ErrorPatterns)
    starting_balance: float = 0.0
    expected_trades_per_hour: TradeBounds | None = None
    stale_after: PositiveDuration | None = None
    start_command: Argv | None = None
    stop_timeout: PositiveDuration = 10.0
    memory_limit_cap: Size | None = None
    on_auth_error: Argv | None = None
    on_rate_limit: ArgvWithPid | None = None
    preset: NonEmpty | None = None                # a kind of bot botwatch knows (botwatch.core.presets)
    api_url: HttpUrl | None = None             # a preset bot's REST API: loop health, state, open-trade profit
    api_auth_file: Path | None = None          # "user:password" for the API's HTTP Basic auth, never inline
    on_stopped: Literal["notify", "start"] = "notify"   # a stop botwatch did not cause: tell (default) or start it
    exchange: NonEmpty | None = None
    stuck_after: PositiveDuration | None = None
    replay: Replay | None = None
    page_exposure_above: float = Field(default=0.0, ge=0)   # TradingBotDownWithExposure: unprotected money above this
    max_drawdown: DrawdownLimit | None = None     # TradingBotDrawdown: equity this far below its peak (10% or 250)
    drawdown_window: PositiveDuration = 7 * 86400.0   # the peak is the highest equity within this window
    on_drawdown: Argv | Literal["freqtrade_stopentry"] | None = None   # run once per TradingBotDrawdown incident
    drift_check_interval: PositiveDuration = 900.0   # with replay: its positions against the exchange's balances

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, raw):
        return presets.apply(raw) if isinstance(raw, dict) else raw

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value):
        if value is not None and value not in presets.KINDS:
            raise ValueError(f"unknown preset {value!r}: one of {', '.join(presets.names())}")
        return value

    @model_validator(mode="after")
    def _stopentry_needs_freqtrade(self):
        if self.on_drawdown == "freqtrade_stopentry" and (self.preset != "freqtrade" or not self.api_url):
            raise ValueError("on_drawdown: freqtrade_stopentry goes with preset: freqtrade and its api_url (it asks "
                             "Freqtrade's POST /api/v1/stopentry); give another bot an argv list")
        return self

    @model_validator(mode="after")
    def _one_liveness_source(self):
        given = [key for key in LIVENESS_KEYS if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(f"more than one liveness source ({', '.join(given)}): keep one of them")
        if not given and self.health_endpoint is None:
            raise ValueError(f"no liveness source: give one of {', '.join(LIVENESS_KEYS)}, or a health_endpoint")
        if (self.compose_project or self.compose_file) and not self.compose_service:
            raise ValueError("compose_project and compose_file go with compose_service")
        if self.replay is not None and self.kind.no_replay:
            raise ValueError(f"replay is not for preset: {self.kind.name}: {self.kind.no_replay}")
        if (self.api_url or self.api_auth_file) and not self.kind.has_api:
            with_api = " or ".join(name for name in presets.names() if presets.KINDS[name].has_api)
            raise ValueError(f"api_url and api_auth_file go with preset: {with_api} (the bot with a REST API)")
        return self

    @property
    def kind(self) -> presets.BotKind:
        """The kind of bot its preset names (the generic one without): its store, API, loop check."""
        return presets.kind_of(self.preset)

    @property
    def store(self) -> str:
        """The kind of trade store: csv, or the preset whose database the data file is."""
        return self.kind.name

    def exchange_name(self, learned: dict[str, str] | None = None) -> str | None:
        """The exchange the bot trades on: its `exchange` key, its replay's, or what its own API said."""
        return self.exchange or (self.replay.exchange if self.replay else None) or (learned or {}).get(self.name)

    @property
    def runtime(self) -> str:
        """How the bot runs: process, docker, compose, systemd, or none (health endpoint only)."""
        return next((kind for kind, keys in RUNTIME_KEYS.items() if any(getattr(self, key) for key in keys)),
                    HEALTH_ONLY)

    @property
    def liveness_source(self) -> str:
        for key in LIVENESS_KEYS:
            if getattr(self, key) is not None:
                return f"{key}={getattr(self, key)}"
        return f"health_endpoint={self.health_endpoint}"


class CommandAllow(Strict):
    chats: list[int] = Field(default_factory=list)     # chat ids: every member of such a chat may command
    users: list[int] = Field(default_factory=list)     # user ids: these people, in their private chat or an allowed one


class TelegramCommands(Strict):
    """Commands read from the bot's chats (the Bot API's getUpdates, long polling: no public URL needed)."""
    enabled: bool = False
    allow: CommandAllow = Field(default_factory=CommandAllow)
    poll_timeout: PositiveDuration = 25.0      # one getUpdates waits this long for a message

    @model_validator(mode="after")
    def _someone_may_command(self):
        if self.enabled and not (self.allow.chats or self.allow.users):
            raise ValueError("allow: name at least one chat id (allow.chats) or user id (allow.users): "
                             "commands from anyone else are never answered")
        return self


class Telegram(Strict):
    bot_token_file: Path | None = None
    chat_id: ChatIds = None
    api_url: HttpUrl = "https://api.telegram.org"
    commands: TelegramCommands = Field(default_factory=TelegramCommands)

    @model_validator(mode="after")
    def _commands_need_the_bot(self):
        if self.commands.enabled and not self.bot_token_file:
            raise ValueError("commands.enabled needs bot_token_file: the commands are read through that bot")
        return self

    @property
    def chat_ids(self) -> list[int | str]:
        if self.chat_id is None:
            return []
        return list(self.chat_id) if isinstance(self.chat_id, list) else [self.chat_id]


BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


class PageUser(Strict):
    """Someone who may act from the status page: a name and a bcrypt hash (`botwatch hash-password`)."""
    name: NonEmpty
    password_hash: NonEmpty

    @field_validator("password_hash")
    @classmethod
    def _a_bcrypt_hash(cls, value: str) -> str:
        if not BCRYPT_HASH.fullmatch(value):
            raise ValueError("not a bcrypt hash (like $2b$12$…, 60 characters): make one with "
                             "`botwatch hash-password`; never put a password itself here")
        return value


class StatusPage(Strict):
    """The remediator's page at `/`: who may act from it, and whether it may be read without logging in."""
    public: bool = False                       # read-only view without a login (acting always needs one)
    users: list[PageUser] = Field(default_factory=list)
    session_for: PositiveDuration = 43200.0    # a login lasts this long (12 h), then asks again
    lockout_after: int = Field(default=3, ge=1)   # wrong passwords in a row for one name before it is locked
    lockout_for: PositiveDuration = 900.0      # ... for this long (15 min), the right password included

    @model_validator(mode="after")
    def _names_once(self):
        names = [user.name for user in self.users]
        if len(set(names)) != len(names):
            raise ValueError("users: two users have the same name")
        return self


class S3(Strict):
    bucket: NonEmpty
    prefix: str = "botwatch/"
    endpoint_url: HttpUrl | None = None
    region: str | None = None


class Backup(Strict):
    dir: Path = Path("backups")
    s3: S3 | None = None
    keep_hourly: int = Field(default=48, ge=0)
    keep_daily: int = Field(default=30, ge=0)
    interval: PositiveDuration = 3600.0


class Remediation(Strict):
    dry_run: bool = False
    # a death the exporter or an agent sees as an event (pidfd, docker's event stream) is restarted through
    # the same job path as TradingBotDown, without waiting for two checks, a scrape and a rule evaluation
    fast_path: bool = True
    verify_after: Duration = 1.0               # the first look after an action: a restart is verified by polling
    verify_within: PositiveDuration = 60.0     # until healthy, or failed when still not after this long
    backoff: list[Duration] = Field(default_factory=lambda: [300.0, 900.0, 1800.0], min_length=1)
    max_attempts: int = Field(default=3, ge=1)   # the restarts after the first, each after its backoff
    healthy_reset_after: PositiveDuration = 3600.0
    job_lease: PositiveDuration = 30.0         # a claimed job is the worker's this long, renewed while it runs
    job_deadline: PositiveDuration = 120.0     # a job for another host's agent not started by then expires
    # where a pause becomes a silence: one peer is enough (an HA cluster gossips it), the next is tried if one fails
    alertmanager_urls: list[HttpUrl] = Field(default_factory=lambda: [
        f"http://127.0.0.1:{mixin.CONFIG['ports']['alertmanager']}"], min_length=1)

    @property
    def restarts(self) -> int:
        """How many restarts before giving up: one at once, then `max_attempts` more, each after its backoff
        (the defaults: at once, then after 5, 15 and 30 minutes)."""
        return 1 + self.max_attempts


class Report(Strict):
    at: ClockTime = "08:00"
    timezone: TimeZone = "UTC"
    enabled: bool = True
    prometheus_url: HttpUrl = f"http://127.0.0.1:{mixin.CONFIG['ports']['prometheus']}"
    window: PositiveDuration = 86400.0


class Config(Strict):
    telegram: Telegram = Field(default_factory=Telegram)
    backup: Backup = Field(default_factory=Backup)
    remediation: Remediation = Field(default_factory=Remediation)
    report: Report = Field(default_factory=Report)
    status_page: StatusPage = Field(default_factory=StatusPage)
    bots: list[Bot] = Field(min_length=1)
    exchanges: dict[NonEmpty, Exchange] = Field(default_factory=dict)
    maintenance: list[Maintenance] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _maintenance_names_what_exists(self):
        names, hosts = {bot.name for bot in self.bots}, {bot.host for bot in self.bots}
        for index, window in enumerate(self.maintenance):
            unknown = [b for b in window.bots or [] if b not in names] + [h for h in window.hosts or [] if h not in hosts]
            if unknown:
                raise ValueError(f"maintenance[{index}] ({window.name}): no bot or host {', '.join(map(repr, unknown))} "
                                 "in this config")
        if len({window.name for window in self.maintenance}) != len(self.maintenance):
            raise ValueError("maintenance: two windows have the same name")
        return self

    def bot(self, name: str) -> Bot | None:
        """The bot called `name`, or None: a label value is only ever a key into this lookup."""
        return next((bot for bot in self.bots if bot.name == name), None)

    @property
    def hosts(self) -> list[str]:
        """The hosts the bots run on, in the order the config first names them."""
        return list(dict.fromkeys(bot.host for bot in self.bots))

    def on_host(self, host: str) -> "Config":
        """This config with only the bots on `host` (what that host's agent watches and acts on); it may
        have no bot at all."""
        return self.model_copy(update={"bots": [bot for bot in self.bots if bot.host == host]})

    def bots_on(self, exchange: str, learned: dict[str, str] | None = None) -> list[Bot]:
        """The bots trading on `exchange`: by their `exchange` key, else as their own API told (`learned`)."""
        learned = learned or {}
        return [bot for bot in self.bots if bot.exchange_name(learned) == exchange]


def parse_text(text: str, source: str = "<config>") -> dict:
    """The raw mapping in a YAML or JSON document (JSON is YAML, but its errors read better from json)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{") or source.endswith(".json"):
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise ConfigError(source, [f"line {err.lineno} column {err.colno}: invalid JSON: {err.msg}"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): must be a mapping with a `bots` list"])
    return raw


def _resolve(value: Path | None, base: Path) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


def _resolve_paths(config: Config, base: Path) -> Config:
    bots = []
    for bot in config.bots:
        update = {key: _resolve(getattr(bot, key), base)
                  for key in ("pidfile", "compose_file", "data_file", "journal", "log_file", "api_auth_file")}
        if bot.replay is not None:
            update["replay"] = bot.replay.model_copy(
                update={"credentials_file": _resolve(bot.replay.credentials_file, base)})
        bots.append(bot.model_copy(update=update))
    telegram = config.telegram.model_copy(update={"bot_token_file": _resolve(config.telegram.bot_token_file, base)})
    backup = config.backup.model_copy(update={"dir": _resolve(config.backup.dir, base)})
    return config.model_copy(update={"bots": bots, "telegram": telegram, "backup": backup})


def config_from_mapping(raw: dict, source: str = "<config>", base: Path | None = None) -> Config:
    """A validated Config from a raw mapping, or ConfigError naming every problem."""
    problems = duplicate_names(raw)
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        problems = problems_of(err, raw) + problems
        config = None
    if problems:
        raise ConfigError(source, problems)
    base = base or Path.cwd()
    return _resolve_paths(config, base)


def load_config(path: str | Path) -> Config:
    """The config in `path` (YAML or JSON), with relative paths resolved against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), [f"cannot read: {err}"]) from None
    raw = parse_text(text, str(path))
    config = config_from_mapping(raw, str(path), path.resolve().parent)
    return config.model_copy(update={"path": path.resolve()})


# The alerts a bot's config can leave silent, and the key that turns each on
ALERT_KEYS = (("expected_trades_per_hour", "TradingBotAbnormalTradeFrequency"),
              ("stale_after", "TradingBotStaleData"),
              ("log_file", "TradingBotApiKeyErrors, TradingBotRateLimited and ExchangeRateLimited"))


def alerts_off(bot: Bot) -> list[tuple[str, str]]:
    """(key, alerts) for each alert that can never fire for this bot, and the key that would turn it on."""
    return [(key, alerts) for key, alerts in ALERT_KEYS if getattr(bot, key) is None]


def warnings(config: Config) -> list[str]:
    """Things that are allowed but probably not meant: files that do not exist yet, alerts that can never
    fire for want of a key."""
    found = []
    for index, bot in enumerate(config.bots):
        for key, alerts in alerts_off(bot):
            found.append(f"bots[{index}].{key} ({bot.name}): not set, so {alerts} can never fire for it")
        for key in ("data_file", "journal", "pidfile", "compose_file"):
            value = getattr(bot, key)
            if value is not None and not value.exists():
                found.append(f"bots[{index}].{key} ({bot.name}): {value} does not exist (yet)")
        for key, why in bot.kind.warnings(bot):
            found.append(f"bots[{index}].{key} ({bot.name}): {why}")
        if bot.replay is not None and not bot.replay.credentials_file.exists():
            found.append(f"bots[{index}].replay.credentials_file ({bot.name}): "
                         f"{bot.replay.credentials_file} does not exist")
        if bot.start_command is None and bot.runtime == PROCESS:
            found.append(f"bots[{index}].start_command ({bot.name}): not set, so the remediator cannot restart it")
    if config.telegram.bot_token_file and not config.telegram.bot_token_file.exists():
        found.append(f"telegram.bot_token_file: {config.telegram.bot_token_file} does not exist")
    return found
