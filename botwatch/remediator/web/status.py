"""What the remediator shows: `/metrics`, `/-/healthy`, and the status page at `/`."""

from __future__ import annotations

import html
from datetime import datetime, timezone

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from botwatch import __version__, resources
from botwatch.remediator.actions.intake import DELIVERY_KEY
from botwatch.remediator.web.common import remediator

status = Blueprint("status", __name__)


@status.get("/metrics")
def metrics():
    return Response(generate_latest(remediator().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@status.get("/-/healthy")
def healthy():
    return Response("OK\n", mimetype="text/plain")


@status.get("/")
def status_page():
    r = remediator()
    states = r.ledger.bot_states()
    rows = []
    for bot in r.config.bots:
        state = states.get(bot.name)
        attempts = state.attempts if state else 0
        circuit = "OPEN" if state and state.circuit_open else "closed"
        last = _when(state.last_restart_at) if state and state.last_restart_at else "-"
        pause = r.pauses.holding(bot.name)
        held = html.escape(r.pauses.says(pause)) if pause else "-"
        rows.append(f"<tr><td>{html.escape(bot.name)}</td><td>{html.escape(bot.runtime)}</td><td>{attempts}/"
                    f"{r.config.remediation.restarts}</td><td>{circuit}</td><td>{last}</td><td>{held}</td></tr>")
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
    failing = r.ledger.get(DELIVERY_KEY)
    delivery = (f"<p><b>⚠️ Alertmanager's {html.escape(str(failing.get('integration')))} notifications are failing "
                f"since {_when(failing.get('since'))}</b>: alerts may not reach anyone.</p>" if failing else "")
    mode = " (dry run)" if r.config.remediation.dry_run else ""
    page = (f"<!doctype html><html><head><title>botwatch remediator</title></head><body>"
            f"<h1>botwatch remediator {__version__}{mode}</h1>{delivery}<p><a href=\"/metrics\">Metrics</a></p>"
            f"<h2>Bots</h2><table><tr><th>bot</th><th>runtime</th><th>restarts</th><th>circuit</th>"
            f"<th>last restart</th><th>held (paused, maintenance, stopped on purpose)</th></tr>{''.join(rows)}</table>"
            f"<h2>Hosts</h2><table><tr><th>host</th><th>agent</th><th>last seen</th></tr>{''.join(hosts)}</table>"
            f"<p>Jobs: {jobs}</p>"
            f"<h2>Last actions</h2><table><tr><th>time</th><th>bot</th><th>playbook</th><th>state</th>"
            f"<th>outcome</th><th>detail</th></tr>{''.join(actions)}</table></body></html>")
    return Response(page, mimetype="text/html")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


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
