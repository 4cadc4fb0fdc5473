"""What the remediator shows besides the status page (web/page.py): `/metrics`, `/-/healthy`, the runbook."""

from __future__ import annotations

import html

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from botwatch import __version__, resources
from botwatch.remediator.web.common import remediator

status = Blueprint("status", __name__)


@status.get("/metrics")
def metrics():
    return Response(generate_latest(remediator().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@status.get("/-/healthy")
def healthy():
    return Response("OK\n", mimetype="text/plain")


@status.get("/runbook")
def runbook():
    """The runbook shipped in the package, each `## Alert` a heading whose anchor the alerts' runbook_url names."""
    text = resources.path("runbook.md").read_text(encoding="utf-8")
    parts = ["<!doctype html><html><head><title>botwatch runbook</title></head><body>"]
    block: list[str] = []
    for line in text.splitlines() + ["## "]:
        heading = line[3:].strip() if line.startswith("## ") else None
        if heading is None:
            block.append(html.escape(line))
            continue
        if any(block):
            parts.append("<pre>" + "\n".join(block).strip("\n") + "</pre>")
        block = []
        if heading:
            parts.append(f'<h2 id="{html.escape(heading.lower())}">{html.escape(heading)}</h2>')
    parts.append("</body></html>")
    return Response("".join(parts), mimetype="text/html")
