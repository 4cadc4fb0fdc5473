"""The status page's door and forms, through Flask's client on a real engine and a real Alertmanager 0.25:
reading needs a login unless `status_page.public`; acting always does, with the session's CSRF token; three
wrong passwords lock a name; the session cookie is HttpOnly, SameSite=Strict, and Secure behind TLS; the
forms pause (a silence by botwatch), resume, reset and restart (after a confirmation) through the same paths
as every other desk, each recorded as a command. (tests/test_status_page_browser.py clicks through it in
Chromium.)"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from botwatch.core.config import config_from_mapping
from botwatch.remediator.web.login import FAILURES_KEY, SESSIONS_KEY
from tests.remediator.conftest import (PAGE_PASSWORD, PAGE_USER, PAGE_USERS, FakeClock, client_for, log_in,
                                       make_config, page_text)
from tests.remediator.test_intent import am_cluster, engine_with, silences  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
BOTH_LEDGERS = True     # sessions and failures in the ledger's kv, on SQLite and on PostgreSQL


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def commands(engine, bot: str = "doge-long") -> list[tuple[str, str]]:
    return [(a.outcome, a.detail) for a in engine.ledger.actions(bot=bot) if a.playbook == "command"]


@pytest.fixture
def paged(tmp_path, am_cluster, engine_factory):
    [am] = am_cluster(1)
    # a clock that starts now (silences are made in Alertmanager's time) and moves when told (lockouts, sessions)
    engine, runtimes = engine_with(engine_factory, tmp_path, [am], bots=("doge-long", "eth-grid"),
                                   clock=FakeClock(time.time()))
    return engine, client_for(engine), am


def test_without_a_login_every_page_sends_to_the_login_and_no_form_acts(paged):
    engine, client, am = paged
    for path in ("/", "/board", "/bots/doge-long", "/bots/doge-long/board"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["Location"].startswith("/login?next=")
    for verb in ("pause", "resume", "reset", "restart"):
        response = client.post(f"/bots/doge-long/{verb}", data={"for": "30m", "confirm": "yes", "csrf": "x"})
        assert response.status_code == 303 and "/login" in response.headers["Location"]
    assert engine.pauses.active() == [] and silences(am) == [] and engine.ledger.actions() == []
    assert client.get("/-/healthy").status_code == 200       # what is not the page stays as it was


def test_three_wrong_passwords_lock_the_name_even_against_the_right_one_until_the_lockout_ends(paged):
    engine, client, _ = paged
    for _ in range(2):
        assert log_in(client, password="wrong").status_code == 401
    locked = log_in(client, password="wrong")
    assert locked.status_code == 429 and "locked for 15 more minutes" in locked.get_data(as_text=True)
    assert log_in(client).status_code == 429                  # the right password too, while locked
    assert log_in(client, name="ANA").status_code == 429       # the name, whatever its case
    assert client.get("/").status_code == 303
    engine.clock.advance(15 * 60)
    assert log_in(client).status_code == 303 and client.get("/").status_code == 200
    assert engine.ledger.get(FAILURES_KEY) == {}               # a good login forgets the failures


def test_an_unknown_name_is_refused_as_a_wrong_password_is_and_counts_the_same(paged):
    _, client, _ = paged
    first = log_in(client, name="mallory", password=PAGE_PASSWORD)
    assert first.status_code == 401 and "Wrong name or password." in first.get_data(as_text=True)
    for _ in range(2):
        last = log_in(client, name="mallory", password=PAGE_PASSWORD)
    assert last.status_code == 429


def test_the_session_cookie_is_httponly_samesite_strict_and_secure_only_behind_tls(paged):
    _, client, _ = paged
    cookie = log_in(client).headers["Set-Cookie"]
    assert "botwatch_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie                            # plain http: a Secure cookie would never come back
    form = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in form.headers["Set-Cookie"]
    behind = client.post("/login", headers={"X-Forwarded-Proto": "https"},
                         data={"name": PAGE_USER, "password": PAGE_PASSWORD, "csrf": csrf_of(form.get_data(as_text=True))})
    assert behind.status_code == 303 and "Secure" in behind.headers["Set-Cookie"]
    tls = client_for(paged[0])
    form = tls.get("/login", base_url="https://botwatch.example")
    answer = tls.post("/login", base_url="https://botwatch.example",
                      data={"name": PAGE_USER, "password": PAGE_PASSWORD, "csrf": csrf_of(form.get_data(as_text=True))})
    assert "Secure" in answer.headers["Set-Cookie"]


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(paged):
    engine, client, am = paged
    assert log_in(client).status_code == 303
    for data in ({"for": "30m", "reason": "x"}, {"for": "30m", "reason": "x", "csrf": "forged"}):
        response = client.post("/bots/doge-long/pause", data=data)
        assert response.status_code == 403 and "CSRF" in response.get_data(as_text=True)
    assert client.post("/bots/doge-long/restart", data={"confirm": "yes"}).status_code == 403
    assert engine.pauses.active() == [] and silences(am) == [] and engine.ledger.actions() == []
    # the login form too: a post without the form's own token (a cross-site login) is refused
    fresh = client_for(engine)
    assert fresh.post("/login", data={"name": PAGE_USER, "password": PAGE_PASSWORD}).status_code == 403


def test_pause_resume_reset_and_a_confirmed_restart_from_the_page_do_what_they_say_and_are_recorded(paged, tmp_path):
    engine, client, am = paged
    log_in(client, next="/bots/doge-long")
    page = page_text(client, "/bots/doge-long")
    csrf = csrf_of(page)
    assert 'action="/bots/doge-long/pause"' in page and "Log out" in page

    done = client.post("/bots/doge-long/pause", data={"for": "30m", "reason": "new <strategy>", "csrf": csrf})
    assert done.status_code == 303 and done.headers["Location"] == "/bots/doge-long?done=paused"
    [pause] = engine.pauses.active()
    assert pause.who == f"web:{PAGE_USER}" and pause.comment == "new <strategy>"
    assert 1799 <= pause.until - engine.clock() <= 1800
    [silence] = silences(am)
    assert silence["matchers"][0]["value"] == "doge-long" and "new <strategy>" in silence["comment"]
    board = page_text(client, "/board")
    assert f"paused by web:{PAGE_USER} until" in board and "new &lt;strategy&gt;" in board and "<strategy>" not in board

    assert client.post("/bots/doge-long/resume", data={"csrf": csrf}).headers["Location"].endswith("done=resumed")
    assert engine.pauses.active() == [] and silences(am) == []

    engine.ledger.update_bot("doge-long", circuit_open=1, attempts=3)
    assert client.post("/bots/doge-long/reset", data={"csrf": csrf}).status_code == 303
    state = engine.ledger.bot_state("doge-long")
    assert (state.circuit_open, state.attempts) == (False, 0)

    asked = client.post("/bots/doge-long/restart", data={"csrf": csrf})
    assert asked.status_code == 200 and "Yes, restart doge-long" in asked.get_data(as_text=True)
    assert [a for a in engine.ledger.actions(bot="doge-long") if a.playbook == "restart"] == []
    client.post("/bots/doge-long/restart", data={"csrf": csrf, "confirm": "no"})
    assert [a for a in engine.ledger.actions(bot="doge-long") if a.playbook == "restart"] == []
    client.post("/bots/doge-long/restart", data={"csrf": csrf, "confirm": "yes"})
    [restart] = [a for a in engine.ledger.actions(bot="doge-long") if a.playbook == "restart"]
    assert restart.alertname == "command" and f"on the status page by web:{PAGE_USER}" in restart.detail

    said = [outcome for outcome, detail in commands(engine)]
    assert sorted(said) == sorted(["success", "success", "success", "cancelled", "scheduled"])
    assert all(f"by web:{PAGE_USER}" in detail for _, detail in commands(engine))
    ops = (tmp_path / "data" / "memory" / "bot-operations.md").read_text()
    assert f"restart confirmed by web:{PAGE_USER}" in ops and "login" in ops


def test_a_bad_duration_is_said_on_the_page_and_pauses_nothing(paged):
    engine, client, am = paged
    log_in(client)
    csrf = csrf_of(page_text(client, "/bots/doge-long"))
    response = client.post("/bots/doge-long/pause", data={"for": "soon", "reason": "x", "csrf": csrf})
    assert "error=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "soon" in page and 'class="error"' in page
    assert engine.pauses.active() == [] and silences(am) == []


def test_a_logout_ends_the_session_in_the_ledger_and_its_cookie_opens_nothing_after(paged):
    engine, client, _ = paged
    log_in(client)
    cookie = client.get_cookie("botwatch_session").value
    csrf = csrf_of(page_text(client))
    assert len(engine.ledger.get(SESSIONS_KEY)) == 1 and cookie not in str(engine.ledger.get(SESSIONS_KEY))
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert engine.ledger.get(SESSIONS_KEY) == {}
    replayed = client_for(engine)
    replayed.set_cookie("botwatch_session", cookie)
    assert replayed.get("/").status_code == 303


def test_a_session_ends_after_session_for(paged):
    engine, client, _ = paged
    log_in(client)
    assert client.get("/").status_code == 200
    engine.clock.advance(12 * 3600 + 1)
    assert client.get("/").status_code == 303


def test_public_lets_anyone_read_but_not_act(tmp_path, engine_factory):
    config = config_from_mapping({"bots": [{"name": "a", "process_name": "a", "data_file": "a.csv"}],
                                  "report": {"enabled": False}, "status_page": {"public": True}}, base=tmp_path)
    engine = engine_factory(config, clock=FakeClock())
    client = client_for(engine)
    assert client.get("/").status_code == 200
    page = client.get("/bots/a").get_data(as_text=True)
    assert "Log in</a> to pause" in page and 'action="/bots/a/pause"' not in page
    assert "/login" in client.post("/bots/a/pause", data={"for": "1h"}).headers["Location"]
    login = client.get("/login").get_data(as_text=True)
    assert "No user is configured" in login
    assert log_in(client).status_code == 403 and engine.pauses.active() == []


def test_the_page_is_never_framed_loads_nothing_from_elsewhere_and_sends_back_only_here(paged):
    engine, client, _ = paged
    answer = log_in(client, next="//evil.example/x")
    assert answer.headers["Location"] == "/"
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and page.headers["X-Frame-Options"] == "DENY"
    text = page.get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', text)          # no CDN: the page works offline
    assert client.get("/static/status.js").status_code == 200 and client.get("/static/status.css").status_code == 200
    assert "doge-long" in text and "eth-grid" in text and 'data-refresh="/board"' in text


def test_hash_password_makes_a_hash_the_config_takes_and_refuses_what_bcrypt_would_cut(tmp_path):
    made = subprocess.run([sys.executable, "-m", "botwatch", "hash-password", "--rounds", "10"], input="hunter22\n",
                          capture_output=True, text=True)
    assert made.returncode == 0 and made.stdout.startswith("$2b$10$")
    config = config_from_mapping({"bots": [{"name": "a", "process_name": "a", "data_file": "a.csv"}],
                                  "status_page": {"users": [{"name": "ana", "password_hash": made.stdout.strip()}]}},
                                 base=tmp_path)
    assert config.status_page.users[0].name == "ana"
    long = subprocess.run([sys.executable, "-m", "botwatch", "hash-password"], input="x" * 73 + "\n",
                          capture_output=True, text=True)
    assert long.returncode == 2 and "1 to 72 bytes" in long.stderr and long.stdout == ""
    path = tmp_path / "bots.yaml"
    path.write_text("bots:\n  - {name: a, process_name: x, data_file: a.csv}\n"
                    "status_page: {users: [{name: ana, password_hash: hunter22}]}\n")
    out = subprocess.run([sys.executable, "-m", "botwatch", "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "status_page.users[0].password_hash" in out.stderr and "hash-password" in out.stderr
    assert PAGE_USERS[0]["password_hash"] not in out.stderr
