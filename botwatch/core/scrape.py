"""Prometheus' config for botwatch, written from the mixin's jobs, ports and scrape interval: the committed
prometheus/prometheus.yml (one host) and prometheus/compose/prometheus.yml (docker compose), and the ones
`botwatch up` and `botwatch up --fleet` write. `make generate` (`python -m botwatch.core.scrape`) writes the
committed two; a test fails when they are stale. Change a job, a port or the interval in the mixin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from botwatch.core.mixin import CONFIG

HEADER = ("# Generated from botwatch/core/mixin.py's CONFIG by botwatch/core/scrape.py: edit those, then run "
          "`make generate`.\n")


def at(host: str, c: dict = CONFIG) -> dict[str, list[str]]:
    """Every part of botwatch at its default port on one host: {"exporter": ["HOST:9817"], ...}."""
    return {part: [f"{host}:{port}"] for part, port in c["ports"].items()}


def prometheus_config(targets: dict[str, list[str]], rule_files: list[str], c: dict = CONFIG,
                      replica: str | None = None, agents_sd: str | None = None, sd_refresh: str = "30s",
                      clients: dict[str, dict] | None = None) -> dict:
    """Prometheus' config: each part of `targets` scraped as its mixin job (the alertmanager part is also
    where alerts go). With `replica` (HA), its replica label, dropped from the alerts it sends so two
    servers' alerts are the same alerts to Alertmanager; with `agents_sd`, the agents found at that /sd URL
    (they label their series with `host` themselves: honor_labels keeps it). `clients`: per part ("agents",
    "remediator", ...) how Prometheus calls it — scheme, tls_config, basic_auth — the remediator's also
    used for /sd."""
    clients = clients or {}
    interval = c["scrape_interval"]
    alerting: dict = {"alertmanagers": [{"static_configs": [{"targets": list(targets["alertmanager"])}]}]}
    if replica:
        alerting = {"alert_relabel_configs": [{"action": "labeldrop", "regex": "replica"}], **alerting}
    scrapes = []
    if agents_sd:
        sd_client = {key: value for key, value in clients.get("remediator", {}).items() if key != "scheme"}
        scrapes.append({"job_name": c["jobs"]["agents"], "honor_labels": True, **clients.get("agents", {}),
                        "http_sd_configs": [{"url": agents_sd, "refresh_interval": sd_refresh, **sd_client}]})
    scrapes += [{"job_name": c["jobs"][part], **clients.get(part, {}), "static_configs": [{"targets": list(targets[part])}]}
                for part in ("exporter", "remediator", "alertmanager", "prometheus") if targets.get(part)]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "external_labels": {"monitor": "botwatch", **({"replica": replica} if replica else {})}},
        "rule_files": rule_files,
        "alerting": alerting,
        "scrape_configs": scrapes,
    }


def render(doc: dict, header: str = HEADER) -> str:
    return header + yaml.safe_dump(doc, sort_keys=False)


def one_host(c: dict = CONFIG) -> str:
    """prometheus/prometheus.yml: everything on 127.0.0.1 at its default port, the rules beside it."""
    return render(prometheus_config(at("127.0.0.1", c), ["rules/*.yml"], c))


def compose(c: dict = CONFIG) -> str:
    """prometheus/compose/prometheus.yml: the services by their compose names, the rules mounted."""
    targets = {part: [f"{part}:{port}"] for part, port in c["ports"].items()}
    targets["prometheus"] = [f"localhost:{c['ports']['prometheus']}"]
    return render(prometheus_config(targets, ["/etc/prometheus/rules/*.yml"], c))


COMMITTED = {"prometheus/prometheus.yml": one_host, "prometheus/compose/prometheus.yml": compose}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m botwatch.core.scrape",
                                description="Write botwatch's Prometheus configs.")
    p.add_argument("--root", default=".", help="the repository's root (default: here)")
    args = p.parse_args(argv)
    for name, make in COMMITTED.items():
        out = Path(args.root) / name
        if not out.parent.is_dir():
            p.error(f"no folder {out.parent} (run from the repository's root, or give --root)")
        out.write_text(make())
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
