"""The Alertmanager webhook (`POST /alerts`), the exporter's fast path (`POST /death`) and the operator's reset
of a bot's circuit (`POST /reset/BOT`)."""

from __future__ import annotations

import json
import logging
import math
import time
from http import HTTPStatus

from flask import Blueprint, request

from botwatch.remediator import faults
from botwatch.remediator.actions import payload
from botwatch.remediator.web.common import answer, authorized, bearer_matches, remediator

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024   # Alertmanager's payloads for max_alerts=50 are far smaller

webhook = Blueprint("webhook", __name__)


class AlertsFirst:
    """`POST /alerts` answered before Flask sees it; every other request goes on to Flask.

    An exchange outage fires every bot at once and Alertmanager retries what times out, so this is the
    remediator's hot path: under bench.webhook_storm Flask's request context, routing and response objects
    were a sixth of the CPU a delivery cost. Here a delivery is plain WSGI: the token, the size cap, the
    parse, the intake's recorded decision, a JSON answer, counted by status."""

    def __init__(self, app, remediator, token: bytes):
        self.app, self.remediator, self.token = app, remediator, token

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/alerts":
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            code, body, headers = 405, {"error": "POST the Alertmanager webhook payload"}, [("Allow", "POST")]
        else:
            code, body = self.deliver(environ)
            headers = []
        self.remediator.metrics.webhook.labels(str(code)).inc()
        data = json.dumps(body).encode()
        start_response(f"{code} {HTTPStatus(code).phrase}", [("Content-Type", "application/json"),
                                                             ("Content-Length", str(len(data))), *headers])
        return [data]

    def deliver(self, environ) -> tuple[int, dict]:
        if not bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), self.token):
            return 401, {"error": "missing or wrong bearer token"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:                       # read(-1) would read whatever the client sends
            return 400, {"error": "Content-Length must be a number of bytes"}
        if length > MAX_BODY:
            return 413, {"error": f"payload over {MAX_BODY} bytes"}
        stream = environ["wsgi.input"]
        # no Content-Length (chunked): read one byte past the cap to know it was passed
        body = stream.read(length) if length else stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return 413, {"error": f"payload over {MAX_BODY} bytes"}
        try:
            parsed = payload.parse(body)
        except payload.PayloadError as err:
            return 400, {"error": str(err)}
        try:
            counts = self.remediator.intake.handle(parsed)
        except Exception:  # the ledger could not record it: let Alertmanager retry rather than lose it
            log.exception("could not record a webhook delivery")
            return 503, {"error": "could not record the alerts; retry"}
        delay = faults.webhook_delay()
        if delay:
            time.sleep(delay)
        return 200, {"status": "ok", **counts}


def death_report(data, host: str | None = None):
    """A death the exporter or an agent saw as an event ({"bot", "at", "detail"}): the intake's answer, or a
    400/404/409 naming what is wrong."""
    r = remediator()
    if not isinstance(data, dict):
        return answer(400, {"error": "the body must be a JSON object like {\"bot\": \"doge-long\", \"at\": 1.7e9}"})
    name, at, detail = data.get("bot"), data.get("at"), data.get("detail")
    if not isinstance(name, str) or r.config.bot(name) is None:
        return answer(404, {"error": f"bot: {str(name)[:100]!r} is not in the config"})
    if host is not None and r.config.bot(name).host != host:
        return answer(409, {"error": f"bot {name} is on host {r.config.bot(name).host}, not {host}"})
    if not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at) or at <= 0:
        return answer(400, {"error": "at: the Unix time the bot ended"})
    if not r.config.remediation.fast_path:
        return answer(409, {"error": "remediation.fast_path is off: TradingBotDown restarts it"})
    detail = detail[:500] if isinstance(detail, str) else "ended"
    try:
        outcome = r.intake.death(name, float(at), detail)
    except Exception:  # the ledger could not record it: the sender retries, then leaves it to the alert
        log.exception("could not record a death report")
        return answer(503, {"error": "could not record the death; retry"})
    return answer(200, {"outcome": outcome})


@webhook.post("/death")
def death():
    if not authorized():
        return answer(401, {"error": "missing or wrong bearer token"})
    return death_report(request.get_json(silent=True))


@webhook.post("/reset/<bot>")
def reset(bot: str):
    if not authorized():
        return answer(401, {"error": "missing or wrong bearer token"})
    if not remediator().intake.reset(bot):
        return answer(404, {"error": "no such bot in the config"})
    return answer(200, {"status": "reset", "bot": bot})
