"""The remediator's Flask app: the Alertmanager webhook, /metrics, a status page, an operator reset."""

from __future__ import annotations

import dataclasses

import hmac
import html
import logging
import re
import time
from datetime import datetime, timezone

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from botwatch import __version__
from botwatch.core.config_types import SLUG
from botwatch.remediator.actions import faults, payload
from botwatch.remediator.engine import Remediator

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


def _answer(code: int, body) -> Response:
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


# -- the agents' side: heartbeats and jobs (docs/operations.md, "Many hosts") -------------------------------------------

JOB_FIELDS = ("id", "bot", "playbook", "alertname", "fingerprint", "starts_at", "state", "detail", "host", "attempt")
FORGET_AGENT_AFTER = 86400.0     # /sd lists an agent this long after its last heartbeat (so its absence pages)
ADDRESS = re.compile(r"[A-Za-z0-9.\-]{1,253}:\d{1,5}|\[[0-9A-Fa-f:.]{2,45}\]:\d{1,5}")


def _body() -> dict:
    """The JSON object of an agent's request, or a 400."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "the body must be a JSON object")
    return data


def _field(data: dict, name: str, kind, cap: int = 2000):
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        abort(400, f"{name}: missing or not a {'number' if isinstance(kind, tuple) else kind.__name__}")
    if isinstance(value, str) and len(value) > cap:
        abort(400, f"{name}: over {cap} characters")
    return value


def _text(data: dict, name: str, cap: int) -> str | None:
    """An optional text field, cut to `cap` characters; None when absent or not text."""
    value = data.get(name)
    return value[:cap] if isinstance(value, str) else None


def _job(action, now: float) -> dict:
    job = {name: getattr(action, name) for name in JOB_FIELDS}
    job["lease"] = (action.lease_until - now) if action.lease_until is not None else None
    job["deadline_in"] = (action.deadline - now) if action.deadline is not None else None
    return job


def _held(job_id: int):
    """The job an agent's request is about and the request, if the claim it names is the current one; else
    a 400/404/409."""
    action, data, attempt = _agents_job(job_id)
    if action.attempt != attempt or action.state != "running":
        abort(409, f"job {job_id}: attempt {attempt} is no longer the current claim")
    return action, data


def _agents_job(job_id: int):
    """The job an agent's request is about (of the agent's host), the request, and the claim it names."""
    r = _remediator()
    data = _body()
    attempt = _field(data, "attempt", int)
    action = r.ledger.find(job_id)
    if action is None:
        abort(404, f"no job {job_id}")
    if action.host != data.get("host"):
        abort(409, f"job {job_id} is for host {action.host}")
    return action, data, attempt


def _agent_call(handler):
    """Bearer token; a ledger that can't be reached is a 503 (the agent tries again)."""
    def wrapped(*args, **kwargs):
        if not _authorized():
            return _answer(401, {"error": "missing or wrong bearer token"})
        try:
            return handler(*args, **kwargs)
        except HTTPException:
            raise
        except Exception:
            log.exception("an agent's request failed")
            return _answer(503, {"error": "the ledger can't be reached; retry"})
    wrapped.__name__ = handler.__name__
    return wrapped


@bp.post("/agent/poll")
@_agent_call
def agent_poll():
    """An agent's heartbeat, answered with the jobs it may run now (claimed for it, with a lease)."""
    r = _remediator()
    data = _body()
    host, address = _field(data, "host", str, 64), _field(data, "address", str, 300)
    if not SLUG.fullmatch(host):
        abort(400, "host: not a slug (a-z, 0-9, '-')")
    if not ADDRESS.fullmatch(address):
        abort(400, "address: not HOST:PORT")
    busy = data.get("busy", [])       # bots the agent is still running a playbook for (a claim it may have lost)
    if not isinstance(busy, list) or not all(isinstance(bot, str) for bot in busy):
        abort(400, "busy: a list of bot names")
    worker = _text(data, "worker", 200) or host
    now = r.clock()
    r.ledger.heartbeat(host, address, now, _text(data, "version", 50))
    jobs = r.ledger.claim(host, worker, now, r.config.remediation.job_lease, set(busy))
    return _answer(200, {"jobs": [_job(job, now) for job in jobs], "lease": r.config.remediation.job_lease})


@bp.post("/agent/jobs/<int:job_id>/renew")
@_agent_call
def agent_renew(job_id: int):
    r = _remediator()
    action, _ = _held(job_id)
    if not r.ledger.renew(action.id, action.attempt, r.clock() + r.config.remediation.job_lease):
        abort(409, f"job {job_id}: the claim is no longer current")
    return _answer(200, {"lease": r.config.remediation.job_lease})


@bp.post("/agent/jobs/<int:job_id>/finish")
@_agent_call
def agent_finish(job_id: int):
    from botwatch.remediator.playbooks import OUTCOMES, Result
    r = _remediator()
    action, data, attempt = _agents_job(job_id)
    outcome = _field(data, "outcome", str, 20)
    if outcome not in OUTCOMES and outcome != "deferred":
        abort(400, f"outcome: one of {', '.join(OUTCOMES)}, or deferred")
    detail = _field(data, "detail", str, 4000)
    if outcome == "deferred":
        after = _field(data, "after", (int, float))
        if action.attempt != attempt or action.state != "running":
            abort(409, f"job {job_id}: attempt {attempt} is no longer the current claim")
        ok = r.outcomes.deferred(action, Result("deferred", detail, run_at=r.clock() + max(0.0, float(after))))
    else:
        duration = data.get("duration")
        duration = float(duration) if isinstance(duration, (int, float)) and duration >= 0 else 0.0
        result = Result(outcome, detail, _text(data, "log_excerpt", 4000), retry=bool(data.get("retry")),
                        notice=_text(data, "notice", 4000))
        run = dataclasses.replace(action, attempt=attempt)     # the run that ended, whichever claim is current
        ok = r.outcomes.finished(run, result, r.clock() - duration, duration, bool(data.get("restarted")))
    if not ok:
        abort(409, f"job {job_id}: the claim is no longer current")
    return _answer(200, {"status": "recorded"})


@bp.post("/agent/jobs/<int:job_id>/ledger")
@_agent_call
def agent_ledger(job_id: int):
    """What a playbook run by an agent reads and writes in the ledger: its bot's restart bookkeeping and its
    own restore progress, only while its claim is the current one."""
    from botwatch.remediator.ledger import BOT_FIELDS
    r = _remediator()
    action, data = _held(job_id)
    op = data.get("op")
    if op == "bot_state":
        state = r.ledger.bot_state(action.bot)
        return _answer(200, {"value": {name: getattr(state, name) for name in BOT_FIELDS}})
    if op == "update_bot":
        fields = data.get("fields")
        if not isinstance(fields, dict) or not fields or set(fields) - set(BOT_FIELDS) or not all(
                value is None or isinstance(value, (int, float)) for value in fields.values()):
            abort(400, f"fields: a map of {', '.join(BOT_FIELDS)} to numbers")
        r.ledger.update_bot(action.bot, **fields)
        return _answer(200, {"value": None})
    key = _field(data, "key", str, 200)
    if key != f"restore-step:{action.id}":
        abort(403, "key: a job may only keep its own restore progress")
    if op == "get":
        return _answer(200, {"value": r.ledger.get(key)})
    if op == "put":
        r.ledger.put(key, data.get("value"))
        return _answer(200, {"value": None})
    abort(400, "op: one of bot_state, update_bot, get, put")


@bp.post("/agent/backups")
@_agent_call
def agent_backup():
    """A backup an agent made of one of its host's bots: recorded as the remediator's own are (the report's
    actions, botwatch_backups_total, botwatch_last_backup_timestamp_seconds)."""
    from botwatch.remediator.actions.periodic import record_backup
    r = _remediator()
    data = _body()
    bot = r.config.bot(_field(data, "bot", str, 64))
    if bot is None or bot.host != data.get("host"):
        abort(404, "bot: not one of this host's bots in the remediator's config")
    outcome = _field(data, "outcome", str, 20)
    if outcome not in ("success", "skipped", "failed"):
        abort(400, "outcome: success, skipped or failed")
    created, duration = data.get("created"), data.get("duration")
    record_backup(r.ledger, r.opslog, r.metrics, r.clock(), bot, outcome, _field(data, "detail", str, 4000),
                  float(duration) if isinstance(duration, (int, float)) and duration >= 0 else 0.0,
                  float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None)
    return _answer(200, {"status": "recorded"})


@bp.get("/sd")
def service_discovery():
    """Prometheus HTTP service discovery: every agent that heartbeat within a day, labelled `host`."""
    r = _remediator()
    try:
        agents = r.ledger.agents()
    except Exception:
        log.exception("/sd: the ledger can't be reached")
        return _answer(503, {"error": "the ledger can't be reached"})   # Prometheus keeps its last list
    now = r.clock()
    return _answer(200, [{"targets": [agent.address], "labels": {"host": agent.host}}  # type: ignore[arg-type]
                         for agent in agents if now - agent.last_seen <= FORGET_AGENT_AFTER])


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
    hosts = []
    seen = {agent.host: agent for agent in r.ledger.agents()}
    for host in dict.fromkeys([*r.config.hosts, *seen]):
        agent = seen.get(host)
        where = "this remediator" if host == "local" else (html.escape(agent.address) if agent else "no agent yet")
        hosts.append(f"<tr><td>{html.escape(host)}</td><td>{where}</td>"
                     f"<td>{_when(agent.last_seen) if agent else '-'}</td></tr>")
    jobs = ", ".join(f"{state} {count}" for state, count in r.ledger.job_counts().items())
    mode = " (dry run)" if r.config.remediation.dry_run else ""
    page = (f"<!doctype html><html><head><title>botwatch remediator</title></head><body>"
            f"<h1>botwatch remediator {__version__}{mode}</h1><p><a href=\"/metrics\">Metrics</a></p>"
            f"<h2>Bots</h2><table><tr><th>bot</th><th>runtime</th><th>restarts</th><th>circuit</th>"
            f"<th>last restart</th></tr>{''.join(rows)}</table>"
            f"<h2>Hosts</h2><table><tr><th>host</th><th>agent</th><th>last seen</th></tr>{''.join(hosts)}</table>"
            f"<p>Jobs: {jobs}</p>"
            f"<h2>Last actions</h2><table><tr><th>time</th><th>bot</th><th>playbook</th><th>state</th>"
            f"<th>outcome</th><th>detail</th></tr>{''.join(actions)}</table></body></html>")
    return Response(page, mimetype="text/html")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"
