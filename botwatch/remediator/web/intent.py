"""The operator's decisions over HTTP: `POST /pause`, `POST /resume`, `GET /pauses`, `POST /stop` (the bearer
token, as for `/alerts`). `botwatch pause|resume|pauses|stop` are clients of these."""

from __future__ import annotations

import logging

from flask import Blueprint, request

from botwatch.remediator.intent.pauses import PauseError, parse_scope, parse_until
from botwatch.remediator.runtimes import RuntimeFailure
from botwatch.remediator.web.common import answer, authorized, remediator

log = logging.getLogger(__name__)

intent = Blueprint("intent", __name__)


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise PauseError("the body must be a JSON object like {\"bots\": [\"doge-long\"], \"reason\": \"...\"}")
    return data


def _text(data: dict, name: str, cap: int = 500) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PauseError(f"{name}: expected text")
    return value[:cap]


def _scope(data: dict):
    """The bots a pause or resume names: `bots`, or `host`, or `all`."""
    return parse_scope(remediator().config, data.get("bots"), _text(data, "host", 64), data.get("all") is True)


def _who(data: dict) -> str:
    return _text(data, "who", 100) or f"api ({request.remote_addr})"


def _listing(pause) -> dict:
    r = remediator()
    return {**pause.as_dict(), "bots": r.pauses.covered(pause), "says": r.pauses.says(pause)}


def _decided(handler):
    def wrapped():
        if not authorized():
            return answer(401, {"error": "missing or wrong bearer token"})
        try:
            return handler()
        except PauseError as err:
            return answer(400, {"error": str(err)})
    wrapped.__name__ = handler.__name__
    return wrapped


@intent.post("/pause")
@_decided
def pause():
    r = remediator()
    data = _body()
    scope = _scope(data)
    until = parse_until(r.clock(), _text(data, "for", 32), _text(data, "until", 64))
    made = r.pauses.pause(scope, until, _text(data, "reason") or "", _who(data))
    return answer(200, {"status": "paused", "pauses": [_listing(p) for p in made]})


@intent.post("/resume")
@_decided
def resume():
    r = remediator()
    data = _body()
    scope = _scope(data)
    ended = r.pauses.resume(scope, _who(data))
    return answer(200, {"status": "resumed", "ended": [_listing(p) for p in ended]})


@intent.get("/pauses")
@_decided
def pauses():
    r = remediator()
    return answer(200, {"pauses": [_listing(p) for p in r.pauses.active()]})


@intent.post("/stop")
@_decided
def stop():
    """Stop bots on purpose: the intent is recorded first (a hold, reason operator_stop), then each is
    stopped through its runtime; nothing starts them until they are resumed or started by hand."""
    r = remediator()
    data = _body()
    scope = parse_scope(r.config, data.get("bots"), None, False)
    who, stopped = _who(data), []
    for name in scope.bots:
        runtime = r.runner.runtimes.get(name)
        if runtime is None:
            raise PauseError(f"{name} runs on host {r.config.bot(name).host}: stop it with its agent's host")
        r.stops.operator_stop(name, f"botwatch stop by {who}")
        try:
            runtime.stop()
        except RuntimeFailure as err:
            return answer(502, {"error": f"{name}: held, but the stop failed: {err}", "stopped": stopped})
        stopped.append(name)
    return answer(200, {"status": "stopped", "bots": stopped})
