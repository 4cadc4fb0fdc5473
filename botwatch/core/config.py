"""The botwatch config: its model, loading from YAML or JSON, and validation that names every problem.

`load_config(path)` returns a `Config` or raises `ConfigError`, whose `str()` lists each problem by its
path in the file (`bots[1].health_endpoint: ...`). Relative paths resolve against the file's folder.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from botwatch.core.units import parse_duration, parse_size

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
LIVENESS_KEYS = ("process_name", "pidfile", "container", "compose_service", "systemd_unit")
BOT_TYPES = ("spot", "futures", "market-maker")
ERROR_KINDS = ("auth", "rate_limit", "other")
COLUMNS = ("timestamp", "trade_id", "symbol", "side", "price", "qty", "fee")

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
        r"(?i)\b429\b",
        r"(?i)rate[ _-]?limit",
        r"(?i)too many requests",
        r"(?i)\bDDoSProtection\b|request weight",
    ],
    "other": [
        r"\b(ExchangeError|NetworkError|RequestTimeout|ExchangeNotAvailable|InvalidNonce|OrderNotFound)\b",
        r"(?i)\bapi error\b",
    ],
}


def _duration(value):
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def _positive_duration(value):
    seconds = _duration(value)
    if seconds == 0:
        raise ValueError("must be greater than zero")
    return seconds


def _slug(value: str) -> str:
    if not SLUG.fullmatch(value):
        raise ValueError(f"{value!r} is not a slug: use a-z, 0-9 and '-', at most 64 characters "
                         "(it becomes the `bot` label)")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"{value!r} is not a valid regular expression: {err}") from None
    return value


def _argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must name a program: a non-empty list like [\"python\", \"bot.py\"]")
    return value


def _argv_with_pid(value: list[str]) -> list[str]:
    for arg in _argv(value):
        for field in re.findall(r"\{([^{}]*)\}", arg):
            if field != "pid":
                raise ValueError(f"{{{field}}} in {arg!r}: {{pid}} is the only substitution")
    return value


def _chat_ids(value):
    values = value if isinstance(value, list) else [value]
    for chat in values:
        if isinstance(chat, bool) or not isinstance(chat, (int, str)) or chat == "":
            raise ValueError(f"{chat!r} is not a chat id: use a number like 123456789, an @channel name, or a list")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone like UTC or Europe/Berlin") from None
    return value


def _clock_time(value: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 08:00")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Slug = Annotated[str, AfterValidator(_slug)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Regex = Annotated[str, AfterValidator(_regex)]
Argv = Annotated[list[str], AfterValidator(_argv)]
ArgvWithPid = Annotated[list[str], AfterValidator(_argv_with_pid)]
Size = Annotated[int, BeforeValidator(parse_size)]
NonEmpty = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFormat(Strict):
    """How a bot's trade file names its columns and spells its timestamps."""

    columns: dict[Literal[COLUMNS], NonEmpty] = Field(default_factory=dict)
    timestamp: Literal["iso", "epoch_s", "epoch_ms"] = "iso"

    def header_names(self) -> dict[str, str]:
        """The header name of each of the seven fields."""
        return {column: self.columns.get(column, column) for column in COLUMNS}


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


class Bot(Strict):
    name: Slug
    type: Literal[BOT_TYPES] = "spot"
    check_interval: PositiveDuration = 60.0
    process_name: NonEmpty | None = None
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

    @model_validator(mode="after")
    def _one_liveness_source(self):
        given = [key for key in LIVENESS_KEYS if getattr(self, key) is not None]
        if len(given) > 1:
            raise ValueError(f"more than one liveness source ({', '.join(given)}): keep one of them")
        if not given and self.health_endpoint is None:
            raise ValueError(f"no liveness source: give one of {', '.join(LIVENESS_KEYS)}, or a health_endpoint")
        if (self.compose_project or self.compose_file) and not self.compose_service:
            raise ValueError("compose_project and compose_file go with compose_service")
        return self

    @property
    def runtime(self) -> str:
        """How the bot runs: process, docker, compose, systemd, or none (health endpoint only)."""
        if self.process_name or self.pidfile:
            return "process"
        if self.container:
            return "docker"
        if self.compose_service:
            return "compose"
        if self.systemd_unit:
            return "systemd"
        return "none"

    @property
    def liveness_source(self) -> str:
        for key in LIVENESS_KEYS:
            if getattr(self, key) is not None:
                return f"{key}={getattr(self, key)}"
        return f"health_endpoint={self.health_endpoint}"


class Telegram(Strict):
    bot_token_file: Path | None = None
    chat_id: Annotated[int | str | list[int | str] | None, BeforeValidator(_chat_ids)] = None
    api_url: HttpUrl = "https://api.telegram.org"

    @property
    def chat_ids(self) -> list[int | str]:
        if self.chat_id is None:
            return []
        return list(self.chat_id) if isinstance(self.chat_id, list) else [self.chat_id]


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
    verify_after: Duration = 30.0
    backoff: list[Duration] = Field(default_factory=lambda: [300.0, 900.0, 1800.0], min_length=1)
    max_attempts: int = Field(default=3, ge=1)
    healthy_reset_after: PositiveDuration = 3600.0


class Report(Strict):
    at: Annotated[str, AfterValidator(_clock_time)] = "08:00"
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    enabled: bool = True
    prometheus_url: HttpUrl = "http://127.0.0.1:9090"
    window: PositiveDuration = 86400.0


class Config(Strict):
    telegram: Telegram = Field(default_factory=Telegram)
    backup: Backup = Field(default_factory=Backup)
    remediation: Remediation = Field(default_factory=Remediation)
    report: Report = Field(default_factory=Report)
    bots: list[Bot] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)

    def bot(self, name: str) -> Bot | None:
        """The bot called `name`, or None: a label value is only ever a key into this lookup."""
        return next((bot for bot in self.bots if bot.name == name), None)


class ConfigError(Exception):
    """A config that can't be used; `problems` lists each as 'path: what is wrong'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"{self.source}: {count} problem{'s' if count != 1 else ''}:"]
        return "\n".join(lines + [f"  {problem}" for problem in self.problems])


def _path_of(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "list[", "int", "str")):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _message(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    message = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _problems(err: ValidationError, raw) -> list[str]:
    seen, problems = set(), []
    for error in err.errors():
        loc = tuple(error["loc"])
        # a union reports one error per member; the first says enough
        key = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str"))))
        if key in seen:
            continue
        seen.add(key)
        path = _path_of(loc)
        bot_name = _bot_name(raw, loc)
        where = f"{path} ({bot_name})" if bot_name else path
        problems.append(f"{where}: {_message(error)}")
    return problems


def _bot_name(raw, loc: tuple) -> str | None:
    if len(loc) >= 2 and loc[0] == "bots" and isinstance(loc[1], int) and isinstance(raw, dict):
        bots = raw.get("bots")
        if isinstance(bots, list) and loc[1] < len(bots) and isinstance(bots[loc[1]], dict):
            name = bots[loc[1]].get("name")
            return str(name) if isinstance(name, str) else None
    return None


def _duplicate_names(raw) -> list[str]:
    bots = raw.get("bots") if isinstance(raw, dict) else None
    if not isinstance(bots, list):
        return []
    first, problems = {}, []
    for index, bot in enumerate(bots):
        name = bot.get("name") if isinstance(bot, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(f"bots[{index}].name: duplicate name {name!r} (also bots[{first[name]}])")
        else:
            first[name] = index
    return problems


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
        bots.append(bot.model_copy(update={
            key: _resolve(getattr(bot, key), base)
            for key in ("pidfile", "compose_file", "data_file", "journal", "log_file")
        }))
    telegram = config.telegram.model_copy(update={"bot_token_file": _resolve(config.telegram.bot_token_file, base)})
    backup = config.backup.model_copy(update={"dir": _resolve(config.backup.dir, base)})
    return config.model_copy(update={"bots": bots, "telegram": telegram, "backup": backup})


def config_from_mapping(raw: dict, source: str = "<config>", base: Path | None = None) -> Config:
    """A validated Config from a raw mapping, or ConfigError naming every problem."""
    problems = _duplicate_names(raw)
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        problems = _problems(err, raw) + problems
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


def warnings(config: Config) -> list[str]:
    """Things that are allowed but probably not meant: files that do not exist yet."""
    found = []
    for index, bot in enumerate(config.bots):
        for key in ("data_file", "journal", "pidfile", "compose_file"):
            value = getattr(bot, key)
            if value is not None and not value.exists():
                found.append(f"bots[{index}].{key} ({bot.name}): {value} does not exist (yet)")
        if bot.start_command is None and bot.runtime == "process":
            found.append(f"bots[{index}].start_command ({bot.name}): not set, so the remediator cannot restart it")
    if config.telegram.bot_token_file and not config.telegram.bot_token_file.exists():
        found.append(f"telegram.bot_token_file: {config.telegram.bot_token_file} does not exist")
    return found
