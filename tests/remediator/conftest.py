"""Fixtures for the remediator: an engine over a temp data dir, its Flask client, a fake clock."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from botwatch.core.config import config_from_mapping
from botwatch.remediator.web.app import create_app
from botwatch.remediator.web.login import hash_password
from botwatch.remediator.engine import Remediator
from botwatch.remediator.tell.notifier import Notifier

TOKEN = "test-webhook-token"
PAGE_USER, PAGE_PASSWORD = "ana", "correct horse battery"
PAGE_USERS = [{"name": PAGE_USER, "password_hash": hash_password(PAGE_PASSWORD, rounds=4)}]   # cost 4: quick


class FakeClock:
    """Time that moves only when told (or slept through): backoff and verify waits without waiting."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(tmp_path: Path, bots: list[dict], telegram_url: str | None = None, **remediation):
    sections = {"remediation": {"verify_after": "2s", **remediation},
                "report": {"enabled": False},   # a test's engine must not send a daily report at 08:00 CI time
                "status_page": {"users": PAGE_USERS}}
    if telegram_url:
        (tmp_path / "tg_token").write_text("123456:TEST-token\n")
        sections["telegram"] = {"bot_token_file": "tg_token", "chat_id": 4242, "api_url": telegram_url}
    return config_from_mapping({"bots": bots, **sections}, base=tmp_path)


def pytest_generate_tests(metafunc):
    """A module that sets BOTH_LEDGERS runs each of its engine tests on SQLite and on PostgreSQL."""
    if "ledger_backend" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_LEDGERS", False):
        metafunc.parametrize("ledger_backend", ["sqlite", "postgresql"])


@pytest.fixture
def ledger_backend():
    return "sqlite"


@pytest.fixture
def ledger_target(ledger_backend, request):
    """Where an engine's ledger lives: None (the SQLite file in its data dir) or a fresh PostgreSQL database."""
    return request.getfixturevalue("postgres_url") if ledger_backend == "postgresql" else None


@pytest.fixture
def engine_factory(tmp_path, ledger_target):
    engines = []

    def make(config, clock=None, data_dir=None, **kwargs) -> Remediator:
        kwargs.setdefault("sleep", clock.sleep if clock else __import__("time").sleep)
        kwargs.setdefault("ledger", ledger_target)
        if clock:
            kwargs["clock"] = clock
        notifier = Notifier(config.telegram, outbox=tmp_path / "outbox.jsonl", sleep=lambda s: None)
        engine = Remediator(config, data_dir or tmp_path / "data", notifier=notifier, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop(wait=False)
        engine.ledger.close()


def recording_fleet(tmp_path, engine_factory, bots: list[dict]):
    """An engine on a fake clock over `bots`, each with a RecordingRuntime: (engine, client, runtimes, clock)."""
    runtimes = {}

    def factory(bot):
        runtimes[bot.name] = RecordingRuntime(bot)
        return runtimes[bot.name]

    clock = FakeClock()
    engine = engine_factory(make_config(tmp_path, bots), clock=clock, runtime_factory=factory)
    return engine, client_for(engine), runtimes, clock


def client_for(engine):
    return create_app(engine, TOKEN).test_client()


def log_in(client, name: str = PAGE_USER, password: str = PAGE_PASSWORD, next: str = "/"):
    """The status page's login as a browser does it: the form (its CSRF cookie), then the post."""
    form = client.get(f"/login?next={next}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf": csrf, "next": next})


def page_text(client, path: str = "/") -> str:
    """A status page's HTML, logged in first when it asks for a login."""
    response = client.get(path)
    if response.status_code == 303 and "/login" in response.headers["Location"]:
        assert log_in(client, next=path).status_code == 303
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def alert(bot: str, alertname: str = "TradingBotDown", status: str = "firing", fingerprint: str | None = None,
          starts_at: str = "2026-11-25T08:00:00.123456789Z", **labels) -> dict:
    return {"status": status, "labels": {"alertname": alertname, "bot": bot, "severity": "remediate", **labels},
            "annotations": {"summary": "s"}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint or f"fp-{alertname}-{bot}"}


def payload(*alerts: dict) -> str:
    return json.dumps({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
                       "receiver": "remediator", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://alertmanager", "alerts": list(alerts)})


def post(client, body, token=TOKEN):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/alerts", data=body, headers=headers)


class RecordingRuntime:
    """A runtime that only counts what it is asked (for engine behaviour that no real runtime changes)."""

    name = "recording"

    def __init__(self, bot, up: bool = False, comes_up: bool = True):
        from botwatch.core.liveness import Liveness
        self.bot, self.calls, self._up, self._liveness = bot, [], up, Liveness
        self.comes_up = comes_up

    def status(self):
        return self._liveness(self._up, "recorded", 4242 if self._up else None)

    def stop(self):
        self.calls.append("stop")

    def start(self):
        self.calls.append("start")

    def restart(self):
        self.calls.append("restart")
        self._up = self.comes_up

    def recent_logs(self, lines=20):
        return "last log line"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def outbox_texts(tmp_path) -> list[str]:
    """The notices an engine of engine_factory sent (to its outbox: no Telegram in these tests)."""
    path = tmp_path / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line).get("text", "") for line in path.read_text().splitlines() if line.strip()]
