"""The agents' side (docs/operations.md, "Many hosts"): heartbeats and jobs under `/agent/`, their backups,
and Prometheus' service discovery of them at `GET /sd`."""

from __future__ import annotations

import dataclasses
import logging
import re

from flask import Blueprint, abort, g, request
from werkzeug.exceptions import HTTPException

from botwatch.core.config_types import SLUG
from botwatch.remediator.intent.stops import OPERATOR_STOP
from botwatch.remediator.agent_tokens import host_of
from botwatch.remediator.web.common import answer, remediator

log = logging.getLogger(__name__)

agents = Blueprint("agents", __name__)

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
    r = remediator()
    data = _body()
    attempt = _field(data, "attempt", int)
    action = r.ledger.find(job_id)
    if action is None:
        abort(404, f"no job {job_id}")
    _own_host(action.host, f"job {job_id}")
    return action, data, attempt


def _own_host(host: str | None, what: str) -> None:
    """403 unless `host` is the one the agent's token belongs to."""
    if host != g.agent_host:
        remediator().metrics.agent_refused.labels("another_host").inc()
        log.warning("agent of %s (from %s) refused: %s is for host %s", g.agent_host, request.remote_addr, what, host)
        abort(403, f"{what} is for host {host}, not {g.agent_host}: an agent's token is good for its own host only")


def _agent_call(handler):
    """An agent's own token (its host follows from it); a ledger that can't be reached is a 503 (the agent
    tries again)."""
    def wrapped(*args, **kwargs):
        r = remediator()
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        try:
            host = host_of(r.ledger, given.strip()) if scheme.lower() == "bearer" else None
        except Exception:
            log.exception("an agent's token could not be looked up")
            return answer(503, {"error": "the ledger can't be reached; retry"})
        if host is None:
            r.metrics.agent_refused.labels("token").inc()
            log.warning("an agent's call from %s refused: missing, unknown or revoked token", request.remote_addr)
            return answer(401, {"error": "missing, unknown or revoked agent token: `botwatch agent-token HOST` "
                                         "on the remediator's side issues one per host"})
        g.agent_host = host
        try:
            return handler(*args, **kwargs)
        except HTTPException:
            raise
        except Exception:
            log.exception("an agent's request failed")
            return answer(503, {"error": "the ledger can't be reached; retry"})
    wrapped.__name__ = handler.__name__
    return wrapped


@agents.post("/agent/poll")
@_agent_call
def agent_poll():
    """An agent's heartbeat, answered with the jobs it may run now (claimed for it, with a lease)."""
    r = remediator()
    data = _body()
    host, address = _field(data, "host", str, 64), _field(data, "address", str, 300)
    if not SLUG.fullmatch(host):
        abort(400, "host: not a slug (a-z, 0-9, '-')")
    _own_host(host, "this poll")
    if not ADDRESS.fullmatch(address):
        abort(400, "address: not HOST:PORT")
    busy = data.get("busy", [])       # bots the agent is still running a playbook for (a claim it may have lost)
    if not isinstance(busy, list) or not all(isinstance(bot, str) for bot in busy):
        abort(400, "busy: a list of bot names")
    up = data.get("up", [])           # bots its checks found up: a stop by its operator ends when it runs again
    if not isinstance(up, list) or not all(isinstance(bot, str) for bot in up):
        abort(400, "up: a list of bot names")
    worker = _text(data, "worker", 200) or host
    now = r.clock()
    r.ledger.heartbeat(host, address, now, _text(data, "version", 50))
    for pause in r.pauses.active():
        if pause.reason == "operator_stop" and pause.target in up and r.config.bot(pause.target) \
                and r.config.bot(pause.target).host == host:
            r.pauses.end(pause, now, "running again (its operator started it)")
    jobs = [job for job in r.ledger.claim(host, worker, now, r.config.remediation.job_lease, set(busy))
            if not _held_here(job, now)]
    return answer(200, {"jobs": [_job(job, now) for job in jobs], "lease": r.config.remediation.job_lease,
                        "paused": _paused_on(host, now)})


def _held_here(job, now: float) -> bool:
    """A job of a paused bot ends `held` here, never handed to its agent."""
    from botwatch.remediator.playbooks import Result
    r = remediator()
    pause = r.pauses.holding(job.bot, now)
    if pause is None:
        return False
    r.outcomes.finished(job, Result("held", f"held: {r.pauses.says(pause)}; nothing touched"), now, 0.0, False)
    return True


def _paused_on(host: str, now: float) -> dict[str, str]:
    """bot -> the reason of what holds it, for the host's bots (its agent publishes tradingbot_paused)."""
    r = remediator()
    found = {}
    for pause in r.pauses.active():
        for bot in r.pauses.covered(pause):
            if r.config.bot(bot).host == host:
                found.setdefault(bot, pause.reason)
    return found


@agents.post("/agent/death")
@_agent_call
def agent_death():
    """A death the agent saw as an event (the fast path): a restart job for its host, claimed at its next poll."""
    from botwatch.remediator.web.webhook import death_report
    data = _body()
    host = _field(data, "host", str, 64)
    _own_host(host, "this death")
    return death_report(data, host)


@agents.post("/agent/jobs/<int:job_id>/renew")
@_agent_call
def agent_renew(job_id: int):
    r = remediator()
    action, _ = _held(job_id)
    if not r.ledger.renew(action.id, action.attempt, r.clock() + r.config.remediation.job_lease):
        abort(409, f"job {job_id}: the claim is no longer current")
    return answer(200, {"lease": r.config.remediation.job_lease})


@agents.post("/agent/jobs/<int:job_id>/finish")
@_agent_call
def agent_finish(job_id: int):
    from botwatch.remediator.playbooks import OUTCOMES, Result
    r = remediator()
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
        if ok and outcome == "held" and detail.startswith(OPERATOR_STOP):
            how = detail[len(OPERATOR_STOP):].removesuffix("; not restarted").removesuffix("; not started")
            r.stops.operator_stop(action.bot, how)        # the bot's hold, told once; its agent hears of it
    if not ok:
        abort(409, f"job {job_id}: the claim is no longer current")
    return answer(200, {"status": "recorded"})


@agents.post("/agent/jobs/<int:job_id>/ledger")
@_agent_call
def agent_ledger(job_id: int):
    """What a playbook run by an agent reads and writes in the ledger: its bot's restart bookkeeping and its
    own restore progress, only while its claim is the current one."""
    from botwatch.remediator.ledger import BOT_FIELDS
    r = remediator()
    action, data = _held(job_id)
    op = data.get("op")
    if op == "bot_state":
        state = r.ledger.bot_state(action.bot)
        return answer(200, {"value": {name: getattr(state, name) for name in BOT_FIELDS}})
    if op == "update_bot":
        fields = data.get("fields")
        if not isinstance(fields, dict) or not fields or set(fields) - set(BOT_FIELDS) or not all(
                value is None or isinstance(value, (int, float)) for value in fields.values()):
            abort(400, f"fields: a map of {', '.join(BOT_FIELDS)} to numbers")
        r.ledger.update_bot(action.bot, **fields)
        return answer(200, {"value": None})
    key = _field(data, "key", str, 200)
    if key != f"restore-step:{action.id}":
        abort(403, "key: a job may only keep its own restore progress")
    if op == "get":
        return answer(200, {"value": r.ledger.get(key)})
    if op == "put":
        r.ledger.put(key, data.get("value"))
        return answer(200, {"value": None})
    abort(400, "op: one of bot_state, update_bot, get, put")


@agents.post("/agent/backups")
@_agent_call
def agent_backup():
    """A backup an agent made of one of its host's bots: recorded as the remediator's own are (the report's
    actions, botwatch_backups_total, botwatch_last_backup_timestamp_seconds)."""
    from botwatch.remediator.actions.periodic import record_backup
    r = remediator()
    data = _body()
    bot = r.config.bot(_field(data, "bot", str, 64))
    if bot is None:
        abort(404, "bot: not in the remediator's config")
    _own_host(bot.host, f"bot {bot.name}")
    outcome = _field(data, "outcome", str, 20)
    if outcome not in ("success", "skipped", "failed"):
        abort(400, "outcome: success, skipped or failed")
    created, duration = data.get("created"), data.get("duration")
    record_backup(r.ledger, r.opslog, r.metrics, r.clock(), bot, outcome, _field(data, "detail", str, 4000),
                  float(duration) if isinstance(duration, (int, float)) and duration >= 0 else 0.0,
                  float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else None)
    return answer(200, {"status": "recorded"})


@agents.get("/sd")
def service_discovery():
    """Prometheus HTTP service discovery: every agent that heartbeat within a day, labelled `host`."""
    r = remediator()
    try:
        agents = r.ledger.agents()
    except Exception:
        log.exception("/sd: the ledger can't be reached")
        return answer(503, {"error": "the ledger can't be reached"})   # Prometheus keeps its last list
    now = r.clock()
    return answer(200, [{"targets": [agent.address], "labels": {"host": agent.host}}  # type: ignore[arg-type]
                         for agent in agents if now - agent.last_seen <= FORGET_AGENT_AFTER])
