"""The remediator's Flask app: the webhook, the agents' side and the operator's decisions behind one bearer
token; what it shows (metrics, runbook); the status page behind its login."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from botwatch.remediator.engine import Remediator
from botwatch.remediator.web.agents import agents
from botwatch.remediator.web.common import answer
from botwatch.remediator.web.board import Gatherer
from botwatch.remediator.web.intent import intent
from botwatch.remediator.web.login import login_pages
from botwatch.remediator.web.page import page
from botwatch.remediator.web.status import status
from botwatch.remediator.web.webhook import MAX_BODY, AlertsFirst, webhook


def create_app(remediator: Remediator, token: str) -> Flask:
    if not token:
        raise ValueError("the webhook token is empty")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["remediator"] = remediator
    app.extensions["webhook_token"] = token.encode()
    app.extensions["gatherer"] = Gatherer(remediator)
    for blueprint in (webhook, agents, intent, status, login_pages, page):
        app.register_blueprint(blueprint)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return answer(err.code, {"error": err.description})

    app.wsgi_app = AlertsFirst(app.wsgi_app, remediator, app.extensions["webhook_token"])
    return app
