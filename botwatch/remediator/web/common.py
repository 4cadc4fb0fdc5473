"""What the remediator's blueprints share: the remediator behind the app, JSON answers, the bearer token."""

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
    """The request carries the webhook token (Alertmanager's, and the operator API's: pause, resume, stop)."""
    return bearer_matches(request.headers.get("Authorization", ""), current_app.extensions["webhook_token"])


def bearer_matches(header: str, token: bytes) -> bool:
    """An `Authorization: Bearer …` header carrying `token` (compared in constant time)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token)
