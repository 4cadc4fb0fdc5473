"""The Alertmanager webhook (`POST /alerts`) and the operator's reset of a bot's circuit (`POST /reset/BOT`)."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, request

from botwatch.remediator import faults
from botwatch.remediator.actions import payload
from botwatch.remediator.web.common import answer, authorized, remediator

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024   # Alertmanager's payloads for max_alerts=50 are far smaller

webhook = Blueprint("webhook", __name__)


@webhook.post("/alerts")
def alerts():
    if not authorized():
        return answer(401, {"error": "missing or wrong bearer token"})
    if request.content_length is not None and request.content_length > MAX_BODY:
        return answer(413, {"error": f"payload over {MAX_BODY} bytes"})
    body = request.get_data(cache=False)   # raises 413 past MAX_CONTENT_LENGTH for chunked bodies too
    try:
        parsed = payload.parse(body)
    except payload.PayloadError as err:
        return answer(400, {"error": str(err)})
    try:
        counts = remediator().intake.handle(parsed)
    except Exception:  # the ledger could not record it: let Alertmanager retry rather than lose it
        log.exception("could not record a webhook delivery")
        return answer(503, {"error": "could not record the alerts; retry"})
    delay = faults.webhook_delay()
    if delay:
        time.sleep(delay)
    return answer(200, {"status": "ok", **counts})


@webhook.post("/reset/<bot>")
def reset(bot: str):
    if not authorized():
        return answer(401, {"error": "missing or wrong bearer token"})
    if not remediator().intake.reset(bot):
        return answer(404, {"error": "no such bot in the config"})
    return answer(200, {"status": "reset", "bot": bot})
