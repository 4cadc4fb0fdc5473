"""What the remediator's three blueprints share: the remediator behind the app, JSON answers, the bearer token."""

from __future__ import annotations

import hmac

from flask import Response, current_app, jsonify, request

from botwatch.remediator.engine import Remediator


def remediator() -> Remediator:
    return current_app.extensions["remediator"]


def answer(code: int, body) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


def authorized() -> bool:
    """The request carries the webhook token (Alertmanager's and the agents' bearer token)."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), current_app.extensions["webhook_token"])
