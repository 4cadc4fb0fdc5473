"""The remediator's own metrics (docs/metrics.md); labelled counters start at 0 for every bot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from botwatch import __version__
from botwatch.remediator.playbooks import OUTCOMES, PLAYBOOKS
WEBHOOK_CODES = ("200", "400", "401", "404", "405", "413", "503")


class _CircuitCollector(Collector):
    """botwatch_circuit_open read from the ledger at scrape time, so it survives a restart."""

    def __init__(self, bots, ledger):
        self.bots, self.ledger = bots, ledger

    def collect(self):
        family = GaugeMetricFamily("botwatch_circuit_open",
                                   "1 while botwatch has given up restarting the bot (until recovery or reset).",
                                   labels=["bot"])
        try:
            states = self.ledger.bot_states()
        except Exception:  # the ledger unreachable: left out this scrape
            return
        for bot in self.bots:
            state = states.get(bot)
            family.add_metric([bot], int(bool(state and state.circuit_open)))
        yield family


class _FleetCollector(Collector):
    """botwatch_jobs and the agents' last heartbeats, read from the ledger at scrape time (what any replica
    sharing it would say)."""

    def __init__(self, ledger):
        self.ledger = ledger

    def collect(self):
        try:
            counts, agents = self.ledger.job_counts(), self.ledger.agents()
        except Exception:  # the ledger unreachable: these are left out, the rest of the page stands
            return
        jobs = GaugeMetricFamily("botwatch_jobs", "Jobs in the ledger: queued and running now; expired (never "
                                                  "started by their deadline) in all.", labels=["state"])
        for state, count in counts.items():
            jobs.add_metric([state], count)
        yield jobs
        seen = GaugeMetricFamily("botwatch_agent_last_seen_timestamp_seconds",
                                 "When the host's agent last heartbeat to a remediator, Unix seconds.", labels=["host"])
        for agent in agents:
            seen.add_metric([agent.host], agent.last_seen)
        yield seen


class Metrics:
    def __init__(self, bots: list[str], ledger, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.remediations = Counter("botwatch_remediations", "Playbook runs by outcome.",
                                    ["bot", "playbook", "outcome"], registry=r)
        self.restarts = Counter("botwatch_bot_restarts", "Restarts botwatch performed.", ["bot"], registry=r)
        self.duration = Histogram("botwatch_remediation_duration_seconds", "Time a playbook run took.", ["playbook"],
                                  buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800), registry=r)
        self.webhook = Counter("botwatch_webhook_requests", "Webhook requests by HTTP status.", ["code"], registry=r)
        self.backups = Counter("botwatch_backups", "Backups by outcome.", ["bot", "outcome"], registry=r)
        self.last_backup = Gauge("botwatch_last_backup_timestamp_seconds", "When the bot's last good backup was made.",
                                 ["bot"], registry=r)
        self.notifications = Counter("botwatch_notifications", "Telegram messages by outcome.", ["outcome"],
                                     registry=r)
        self.reports = Counter("botwatch_reports", "Morning reports by outcome (failed: not built or not sent).",
                               ["outcome"], registry=r)
        self.agent_refused = Counter("botwatch_agent_requests_refused", "Agents' calls refused: a missing, unknown "
                                     "or revoked token (token), or a job, bot or host of another host (another_host).",
                                     ["reason"], registry=r)
        build = Gauge("botwatch_remediator_build_info", "botwatch version; always 1.", ["version"], registry=r)
        build.labels(__version__).set(1)
        for bot in bots:
            self.restarts.labels(bot)
            for playbook in PLAYBOOKS:
                for outcome in OUTCOMES:
                    self.remediations.labels(bot, playbook, outcome)
            for outcome in ("success", "failed", "skipped"):
                self.backups.labels(bot, outcome)
        for playbook in PLAYBOOKS:
            self.duration.labels(playbook)
        for code in WEBHOOK_CODES:
            self.webhook.labels(code)
        for outcome in ("sent", "failed", "outbox"):
            self.notifications.labels(outcome)
        for outcome in ("success", "failed"):
            self.reports.labels(outcome)
        for reason in ("token", "another_host"):
            self.agent_refused.labels(reason)
        r.register(_CircuitCollector(bots, ledger))
        r.register(_FleetCollector(ledger))
