"""The remediator's Flask app: the Alertmanager webhook, /metrics, a status page, an operator reset."""

from __future__ import annotations

import hmac
import html
import logging
import time
from datetime import datetime, timezone

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from botwatch import __version__
from remediator import faults, payload
from remediator.engine import Remediator

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024   # Alertmanager's payloads for max_alerts=50 are far smaller

bp = Blueprint("remediator", __name__)


def create_app(remediator: Remediator, token: str) -> Flask:
    if not token:
        raise ValueError("the webhook token is empty")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["remediator"] = remediator
    app.extensions["webhook_token"] = token.encode()
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return _answer(err.code, {"error": err.description})

    @app.after_request
    def _count(response):
        if request.path == "/alerts":
            remediator.metrics.webhook.labels(str(response.status_code)).inc()
        return response

    return app


def _remediator() -> Remediator:
    return current_app.extensions["remediator"]


def _answer(code: int, body: dict) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


def _authorized() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), current_app.extensions["webhook_token"])


@bp.post("/alerts")
def alerts():
    if not _authorized():
        return _answer(401, {"error": "missing or wrong bearer token"})
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _answer(413, {"error": f"payload over {MAX_BODY} bytes"})
    body = request.get_data(cache=False)   # raises 413 past MAX_CONTENT_LENGTH for chunked bodies too
    try:
        parsed = payload.parse(body)
    except payload.PayloadError as err:
        return _answer(400, {"error": str(err)})
    try:
        counts = _remediator().intake.handle(parsed)
    except Exception:  # the ledger could not record it: let Alertmanager retry rather than lose it
        log.exception("could not record a webhook delivery")
        return _answer(503, {"error": "could not record the alerts; retry"})
    delay = faults.webhook_delay()
    if delay:
        time.sleep(delay)
    return _answer(200, {"status": "ok", **counts})


@bp.post("/reset/<bot>")
def reset(bot: str):
    if not _authorized():
        return _answer(401, {"error": "missing or wrong bearer token"})
    if not _remediator().intake.reset(bot):
        return _answer(404, {"error": "no such bot in the config"})
    return _answer(200, {"status": "reset", "bot": bot})


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(_remediator().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/-/healthy")
def healthy():
    return Response("OK\n", mimetype="text/plain")


@bp.get("/")
def status_page():
    r = _remediator()
    states = r.ledger.bot_states()
    rows = []
    for bot in r.config.bots:
        state = states.get(bot.name)
        attempts = state.attempts if state else 0
        circuit = "OPEN" if state and state.circuit_open else "closed"
        last = _when(state.last_restart_at) if state and state.last_restart_at else "-"
        rows.append(f"<tr><td>{html.escape(bot.name)}</td><td>{html.escape(bot.runtime)}</td><td>{attempts}/"
                    f"{r.config.remediation.max_attempts}</td><td>{circuit}</td><td>{last}</td></tr>")
    actions = []
    for action in r.ledger.actions(limit=30):
        actions.append(f"<tr><td>{_when(action.finished_at or action.run_at)}</td><td>{html.escape(action.bot)}</td>"
                       f"<td>{html.escape(action.playbook)}</td><td>{html.escape(action.state)}</td>"
                       f"<td>{html.escape(action.outcome or '')}</td><td>{html.escape((action.detail or '')[:300])}</td></tr>")
    mode = " (dry run)" if r.config.remediation.dry_run else ""
    page = (f"<!doctype html><html><head><title>botwatch remediator</title></head><body>"
            f"<h1>botwatch remediator {__version__}{mode}</h1><p><a href=\"/metrics\">Metrics</a></p>"
            f"<h2>Bots</h2><table><tr><th>bot</th><th>runtime</th><th>restarts</th><th>circuit</th>"
            f"<th>last restart</th></tr>{''.join(rows)}</table>"
            f"<h2>Last actions</h2><table><tr><th>time</th><th>bot</th><th>playbook</th><th>state</th>"
            f"<th>outcome</th><th>detail</th></tr>{''.join(actions)}</table></body></html>")
    return Response(page, mimetype="text/html")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"
