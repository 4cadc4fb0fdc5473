"""Who may act from the status page: the users of `status_page.users` (bcrypt hashes), sessions kept in
the ledger (both replicas know a login; a logout ends it everywhere), a CSRF token per session on every
form, and a lockout after `lockout_after` wrong passwords in a row for one name.

The session cookie is HttpOnly, SameSite=Strict, and Secure when the page is served over TLS (or behind a
proxy that says `X-Forwarded-Proto: https`). The ledger keeps a session's token only as a SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import quote

import bcrypt
from flask import Blueprint, Response, abort, g, redirect, render_template, request

from botwatch.remediator.web.common import remediator

log = logging.getLogger(__name__)

SESSION_COOKIE = "botwatch_session"
LOGIN_COOKIE = "botwatch_login"        # the login form's CSRF token before there is a session (double submit)
SESSIONS_KEY = "web-sessions"
FAILURES_KEY = "web-login-failures"
MAX_PASSWORD = 72                      # bytes bcrypt reads; a longer one is refused, not cut

login_pages = Blueprint("login", __name__)


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    until: float


class Locked(Exception):
    def __init__(self, until: float):
        super().__init__(until)
        self.until = until


@functools.cache
def _nobody() -> bytes:
    """Checked when the name is unknown, so a wrong name takes as long as a wrong password."""
    return bcrypt.hashpw(b"nobody", bcrypt.gensalt(12))


def hash_password(password: str, rounds: int = 12) -> str:
    data = password.encode()
    if not data or len(data) > MAX_PASSWORD:
        raise ValueError(f"a password is 1 to {MAX_PASSWORD} bytes (bcrypt reads no more)")
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds)).decode()


class Doorman:
    """Checks passwords, counts failures, opens and closes sessions; all of it in the ledger."""

    def __init__(self, remediator):
        self.r = remediator
        self.page = remediator.config.status_page

    def check(self, name: str, password: str) -> str | None:
        """The user's name when the password is right; None when not; Locked while the name is locked."""
        now = self.r.clock()
        key = name.strip().lower()[:64]
        failed = (self.r.ledger.get(FAILURES_KEY) or {}).get(key, {})
        if failed.get("until", 0) > now:
            raise Locked(failed["until"])
        user = next((u for u in self.page.users if u.name.lower() == key), None)
        data = password.encode()
        good = len(data) <= MAX_PASSWORD and bcrypt.checkpw(
            data, user.password_hash.encode() if user else _nobody()) and user is not None
        with self.r.ledger.transaction():
            failures = self.r.ledger.get(FAILURES_KEY) or {}
            if good:
                failures.pop(key, None)
            else:
                count = failures.get(key, {}).get("count", 0) + 1
                locked = count >= self.page.lockout_after
                failures[key] = {"count": 0 if locked else count,
                                 "until": now + self.page.lockout_for if locked else 0}
            self.r.ledger.put(FAILURES_KEY, {k: v for k, v in failures.items() if v["count"] or v["until"] > now})
        if not good and failures[key]["until"]:
            log.warning("status page: %r locked for %.0fs after %d wrong passwords (from %s)", key,
                        self.page.lockout_for, self.page.lockout_after, request.remote_addr)
            raise Locked(failures[key]["until"])
        return user.name if good else None

    def open(self, user: str) -> tuple[str, Session]:
        now, token = self.r.clock(), secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now + self.page.session_for)
        with self.r.ledger.transaction():
            sessions = {k: v for k, v in (self.r.ledger.get(SESSIONS_KEY) or {}).items() if v["until"] > now}
            sessions[_digest(token)] = session.__dict__
            self.r.ledger.put(SESSIONS_KEY, sessions)
        return token, session

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        found = (self.r.ledger.get(SESSIONS_KEY) or {}).get(_digest(token))
        if not found or found["until"] <= self.r.clock():
            return None
        return Session(found["user"], found["csrf"], found["until"])

    def close(self, token: str | None) -> None:
        if not token:
            return
        with self.r.ledger.transaction():
            sessions = self.r.ledger.get(SESSIONS_KEY) or {}
            if sessions.pop(_digest(token), None) is not None:
                self.r.ledger.put(SESSIONS_KEY, sessions)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def doorman() -> Doorman:
    return Doorman(remediator())


def current() -> Session | None:
    """The request's session (looked up once per request)."""
    if "session" not in g:
        g.session = doorman().session(request.cookies.get(SESSION_COOKIE))
    return g.session


def secure() -> bool:
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _to_login() -> Response:
    return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=&')}", code=303)


def reader(view):
    """A page anyone may read when `status_page.public`, otherwise only after a login."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current() is None and not remediator().config.status_page.public:
            return _to_login()
        return view(*args, **kwargs)
    return wrapped


def actor(view):
    """A form that acts: a login, and the session's CSRF token in the form (403 without it)."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        session = current()
        if session is None:
            return _to_login()
        if not hmac.compare_digest(request.form.get("csrf", "").encode(), session.csrf.encode()):
            log.warning("status page: a form from %s without its CSRF token refused", request.remote_addr)
            abort(403, "this form's CSRF token is missing or stale: reload the page and try again")
        return view(*args, **kwargs)
    return wrapped


def _next() -> str:
    """Where to go after the login: a path on this site only (never `//elsewhere`)."""
    target = request.values.get("next", "/")
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@login_pages.get("/login")
def login_form():
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    return _login_page(token, None, 200)


@login_pages.post("/login")
def login():
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not token or not hmac.compare_digest(request.form.get("csrf", "").encode(), token.encode()):
        log.warning("status page: a login from %s without its CSRF token refused", request.remote_addr)
        abort(403, "this form's CSRF token is missing or stale: reload the login page")
    r = remediator()
    if not r.config.status_page.users:
        return _login_page(token, "No user may log in: add one under status_page.users in the config "
                           "(botwatch hash-password makes its password_hash).", 403)
    name = request.form.get("name", "")
    try:
        user = doorman().check(name, request.form.get("password", ""))
    except Locked as err:
        minutes = max(1, round((err.until - r.clock()) / 60))
        return _login_page(token, f"Too many wrong passwords: this name is locked for {minutes} more minutes.", 429)
    if user is None:
        log.warning("status page: a wrong password for %r from %s", name[:64], request.remote_addr)
        return _login_page(token, "Wrong name or password.", 401)
    session_token, session = doorman().open(user)
    r.opslog.append(r.clock(), "status page", None, "login", "success", 0.0, f"web:{user} from {request.remote_addr}")
    response = redirect(_next(), code=303)
    response.set_cookie(SESSION_COOKIE, session_token, max_age=int(session.until - r.clock()), httponly=True,
                        samesite="Strict", secure=secure(), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@login_pages.post("/logout")
@actor
def logout():
    doorman().close(request.cookies.get(SESSION_COOKIE))
    response = redirect("/login", code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=secure())
    return response


def _login_page(token: str, error: str | None, code: int) -> Response:
    page = remediator().config.status_page
    response = Response(render_template("login.html", csrf=token, error=error, next=_next(),
                                        nobody=not page.users, public=page.public), status=code)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=secure(), path="/login")
    return response
