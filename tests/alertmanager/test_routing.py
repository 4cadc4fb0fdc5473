"""Routing, inhibition and the Telegram message, checked with amtool and a real Alertmanager 0.25."""

import json
import time
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from botwatch.up.alertmanager import render
from botwatch.core.config import config_from_mapping
from botwatch.core.mixin import CONFIG, alert_rules
from botwatch.up.stack import alertmanager_config
from tests.conftest import BOTWATCH, ROOT, require_tool, wait_for

TEMPLATE = ROOT / "alertmanager" / "alertmanager.yml"


def amtool(*args):
    return subprocess.run([require_tool("amtool"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def rendered(tmp_path, telegram_url="http://127.0.0.1:9", webhook_url="http://127.0.0.1:9818", token="123456:TEST-token"):
    (tmp_path / "tg_token").write_text(token + "\n")
    (tmp_path / "webhook_token").write_text("webhook-secret\n")
    config = config_from_mapping({"telegram": {"bot_token_file": "tg_token", "chat_id": [4242, -100777],
                                               "api_url": telegram_url},
                                  "bots": [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}]}, base=tmp_path)
    return render(config, webhook_url, tmp_path / "webhook_token")


def test_amtool_accepts_the_committed_config():
    result = amtool("check-config", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_rendered_config_and_it_holds_the_secrets(tmp_path):
    text = rendered(tmp_path)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    chats = [c["chat_id"] for c in receivers["telegram-critical"]["telegram_configs"]]
    assert chats == [4242, -100777]
    assert "RENDERED_AT_START" not in text and "123456:TEST-token" in text
    assert "RENDERED_AT_START" in TEMPLATE.read_text() and "TEST-token" not in TEMPLATE.read_text()


def test_an_https_remediator_is_verified_against_the_ca_given_to_render_alertmanager(tmp_path):
    (tmp_path / "webhook_token").write_text("webhook-secret\n")
    (tmp_path / "bots.yaml").write_text("bots: [{name: a, pidfile: a.pid, data_file: a.csv}]\n")
    result = subprocess.run([*BOTWATCH, "render-alertmanager",
                             "--config", str(tmp_path / "bots.yaml"), "--remediator-url", "https://remediator:9818",
                             "--webhook-token-file", str(tmp_path / "webhook_token"), "--ca-file",
                             "/etc/alertmanager/botwatch-ca.crt", "--out", str(tmp_path / "am.yml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert amtool("check-config", str(tmp_path / "am.yml")).returncode == 0
    doc = yaml.safe_load((tmp_path / "am.yml").read_text())
    hooks = [hook for receiver in doc["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert hooks and all(hook["url"] == "https://remediator:9818/alerts" and hook["http_config"]["tls_config"] ==
                         {"ca_file": "/etc/alertmanager/botwatch-ca.crt"} for hook in hooks), hooks


# where each alert of the rules goes, by the labels the rules give it (a new alert needs its line here)
ROUTES = {
    "TradingBotDown": "remediator,blackhole",
    "TradingBotDownCritical": "telegram-critical",
    "TradingBotDownWithExposure": "telegram-critical",
    "TradingBotDataCorrupted": "remediator,telegram-critical",
    "TradingBotDataFileMissing": "telegram-warning",
    "TradingBotStuck": "remediator,telegram-critical",
    "TradingBotStopped": "remediator,blackhole",
    "TradingBotStaleData": "telegram-warning",
    "TradingBotApiKeyErrors": "remediator,telegram-critical",
    "TradingBotRateLimited": "remediator,telegram-warning",
    "ExchangeRateLimited": "remediator,telegram-warning",
    "ExchangeClockSkew": "telegram-critical",
    "TradingBotDrawdown": "remediator,telegram-critical",
    "TradingBotPositionDrift": "telegram-critical",
    "ExchangeErrors": "telegram-warning",
    "TradingBotAbnormalTradeFrequency": "telegram-critical",
    "TradingBotRestartLoop": "telegram-critical",
    "TradingBotAbsent": "telegram-warning",
    "TradingBotUptimeBudgetBurn": "telegram-critical|telegram-warning",
    "BotwatchExporterDown": "telegram-critical",
    "BotwatchRemediatorDown": "telegram-critical",
    "BotwatchHostDown": "telegram-critical",
    "BotwatchCheckUnknown": "telegram-critical",
    "BotwatchAlertDeliveryFailing": "remediator,telegram-critical",
}
RULES = alert_rules(CONFIG)


def labels_of(alertname: str) -> dict:
    """The labels the rules give an alert (its severity, its playbook), with its name."""
    return {"alertname": alertname, **next(rule["labels"] for rule in RULES if rule["alert"] == alertname)}


def test_every_alert_of_the_rules_has_its_route_here():
    assert {rule["alert"] for rule in RULES} == set(ROUTES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_routes_by_the_labels_the_rules_give(rule):
    labels = {"alertname": rule["alert"], **rule["labels"]}
    labels["exchange" if rule["alert"].startswith("Exchange") else "bot"] = "x"
    receivers = ROUTES[rule["alert"]]
    if "|" in receivers:     # one rule per severity
        receivers = "telegram-critical" if labels["severity"] == "critical" else "telegram-warning"
    result = amtool("config", "routes", "test", f"--config.file={TEMPLATE}", f"--verify.receivers={receivers}",
                    *(f"{k}={v}" for k, v in labels.items()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_remediator_receives_exactly_the_alerts_with_a_playbook_and_the_delivery_alarm():
    sent = {rule["alert"] for rule in RULES if ROUTES[rule["alert"]].startswith("remediator")}
    assert sent == set(CONFIG["playbooks"]) | {"BotwatchAlertDeliveryFailing"}


def post_alerts(url, alerts):
    now = datetime.now(timezone.utc)
    payload = [{"labels": a["labels"], "annotations": a.get("annotations", {}),
                "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()} for a in alerts]
    requests.post(f"{url}/api/v2/alerts", json=payload, timeout=5).raise_for_status()


def alert_states(url, key) -> dict:
    """What Alertmanager holds: key(labels) -> the alert's status (state, inhibitedBy, ...)."""
    return {key(a["labels"]): a["status"] for a in requests.get(f"{url}/api/v2/alerts", timeout=5).json()}


def test_api_key_errors_inhibit_the_restart_of_that_bot_only(tmp_path, alertmanager):
    url = alertmanager(rendered(tmp_path))
    post_alerts(url, [
        {"labels": {**labels_of("TradingBotApiKeyErrors"), "bot": "badkey"}},
        {"labels": {**labels_of("TradingBotDown"), "bot": "badkey"}},
        {"labels": {**labels_of("TradingBotDown"), "bot": "other"}},
    ])

    states = lambda: alert_states(url, lambda labels: (labels["alertname"], labels["bot"]))
    wait_for(lambda: states().get(("TradingBotDown", "badkey"), {}).get("state") == "suppressed",
             what="TradingBotDown for badkey inhibited")
    s = states()
    assert s[("TradingBotDown", "badkey")]["inhibitedBy"]
    assert s[("TradingBotDown", "other")]["state"] == "active"


class Capture:
    """Records webhook deliveries with their Authorization header."""

    def __init__(self):
        self.calls = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                capture.calls.append({"auth": self.headers.get("Authorization"), "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_real_alertmanager_delivers_escaped_bounded_telegram_messages_and_bearer_webhooks(
        tmp_path, alertmanager, telegram):
    hook = Capture()
    url = alertmanager(rendered(tmp_path, telegram.url, hook.url, telegram.token))
    hostile = '<b>evil</b> & "quotes" <script>alert(1)</script>'
    post_alerts(url, [
        {"labels": {**labels_of("TradingBotDataCorrupted"), "notify": "telegram",
                    "bot": "doge-long", "check": hostile},
         "annotations": {"summary": "A trading bot's trade data file is corrupt.",
                         "description": hostile + " " + "x" * 10_000,
                         "runbook_url": "https://example.invalid/runbook.md#tradingbotdatacorrupted"}},
    ] + [{"labels": {**labels_of("TradingBotDataCorrupted"), "notify": "telegram",
                     "bot": "flood", "n": str(i)},
          "annotations": {"summary": "s" * 500, "description": "d" * 5000, "exposure": "e" * 5000}}
         for i in range(8)])
    wait_for(lambda: len(telegram.messages()) >= 4, timeout=30, what="two groups to two chats")
    wait_for(lambda: len(hook.calls) >= 2, timeout=30, what="the remediator webhook, once per group")
    assert not telegram.errors
    messages = telegram.messages()
    assert {m["chat_id"] for m in messages} == {"4242", "-100777"}
    assert all(m["parse_mode"] == "HTML" and len(m["text"]) < 4096 for m in messages)
    hostile_texts = [m["text"] for m in messages if "doge-long" in m["text"]]
    flood_texts = [m["text"] for m in messages if "flood" in m["text"]]
    assert len(hostile_texts) == 2 and len(flood_texts) == 2
    for text in hostile_texts:
        assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;evil" in text
        assert "TradingBotDataCorrupted" in text and "runbook" in text
    for text in flood_texts:
        assert "8 alerts in all" in text and text.count("severity: remediate") == 4
        assert text.count("💰 " + "e" * 120 + "\n") == 4
    assert all(call["auth"] == "Bearer webhook-secret" and call["body"]["version"] == "4" for call in hook.calls)
    assert {call["body"]["groupLabels"]["bot"] for call in hook.calls} == {"doge-long", "flood"}
    assert all(call["body"]["groupLabels"]["alertname"] == "TradingBotDataCorrupted" for call in hook.calls)


def test_an_alert_that_fires_again_within_a_group_interval_still_reaches_the_remediator(tmp_path, alertmanager):
    """Resolved and firing again before the group's next flush, an alert is the same alert to Alertmanager's
    notification log (same labels, still firing), so nothing new is sent — until repeat_interval. So the
    remediator routes repeat soon (the remediator takes a repeat of an incident still open as a duplicate),
    and the new incident's startsAt arrives. With HA peers a stale firing resend after the resolve leaves
    the log in the same state (seen in the chaos soak)."""
    hook = Capture()
    (tmp_path / "webhook_token").write_text("webhook-secret\n")
    config = config_from_mapping({"bots": [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}]}, base=tmp_path)
    url = alertmanager(alertmanager_config(config, hook.url, tmp_path / "webhook_token", "fast"))
    labels = {**labels_of("TradingBotDown"), "bot": "a"}

    def send(starts: datetime, ends: datetime | None = None):
        alert = {"labels": labels, "startsAt": starts.isoformat(), **({"endsAt": ends.isoformat()} if ends else {})}
        requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    def delivered() -> list[tuple[str, str]]:
        return [(a["status"], a["startsAt"][:19]) for call in hook.calls for a in call["body"]["alerts"]]

    first = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    send(first)
    wait_for(lambda: ("firing", first.isoformat()[:19]) in delivered(), timeout=30, what="the first incident")
    again = first + timedelta(seconds=8)
    send(first, ends=datetime.now(timezone.utc))      # resolved ...
    send(again)                                       # ... and firing again, before the group's next flush
    wait_for(lambda: ("firing", again.isoformat()[:19]) in delivered(), timeout=45, what="the second incident")


def test_a_critical_alert_mutes_a_bots_warnings_but_not_what_the_remediator_acts_on(tmp_path, alertmanager):
    url = alertmanager(rendered(tmp_path))
    post_alerts(url, [
        {"labels": {"alertname": "TradingBotDownCritical", "severity": "critical", "bot": "x"}},
        {"labels": {"alertname": "TradingBotAbnormalTradeFrequency", "severity": "warning", "bot": "x"}},
        {"labels": {**labels_of("TradingBotRateLimited"), "bot": "x"}},
        {"labels": {"alertname": "BotwatchRemediatorDown", "severity": "critical"}},
        {"labels": {**labels_of("ExchangeRateLimited"), "exchange": "binance"}},
    ])

    states = lambda: {name: status["state"] for name, status in
                      alert_states(url, lambda labels: labels["alertname"]).items()}
    wait_for(lambda: states().get("TradingBotAbnormalTradeFrequency") == "suppressed", what="the warning muted")
    s = states()
    assert s["TradingBotRateLimited"] == "active" and s["ExchangeRateLimited"] == "active", s


def test_an_alertmanager_pair_pages_one_host_outage_once_and_its_end_once(tmp_path, telegram):
    """Two Alertmanager peers, fed as two Prometheus servers feed them (every alert to both, resent every
    second), at `botwatch up`'s fast timings: a host down for 20 s while another host has a short outage of
    its own is one FIRING and one RESOLVED page for each, and no page lists a host that had come back. (Before:
    a peer timeout longer than the group_interval let the second peer send a stale FIRING after the RESOLVED,
    and every host shared one group.)"""
    from botwatch.up.stack import TIMINGS, cluster_args, wait_cluster
    from botwatch.core.units import parse_duration
    from tests.conftest import Daemons, free_port
    (tmp_path / "tg_token").write_text(telegram.token + "\n")
    (tmp_path / "webhook_token").write_text("webhook-secret\n")
    config = config_from_mapping({"telegram": {"bot_token_file": "tg_token", "chat_id": 4242, "api_url": telegram.url},
                                  "bots": [{"name": "a", "pidfile": "a.pid", "data_file": "a.csv"}]}, base=tmp_path)
    text = alertmanager_config(config, Capture().url, tmp_path / "webhook_token", "fast")
    peers = ["alertmanager", "alertmanager-2"]
    ports = {f"cluster-{name}": free_port() for name in peers}
    daemons = Daemons(tmp_path)
    try:
        urls = [daemons.start("prometheus-alertmanager", "alertmanager.yml", text,
                              lambda folder, name=name: [f"--storage.path={folder / 'data'}",
                                                         *cluster_args(name, peers, ports, "fast")])
                for name in peers]
        for url in urls:
            wait_cluster(url, 2)
        started = datetime.now(timezone.utc)
        down = {"host-3": started, "host-1": started + timedelta(seconds=3)}
        back = {"host-1": started + timedelta(seconds=8), "host-3": started + timedelta(seconds=20)}

        def pages(host: str) -> list[str]:
            return [m["text"] for m in telegram.messages() if "BotwatchHostDown" in m["text"] and host in m["text"]]

        def feed() -> None:
            """What both Prometheus servers send both peers now: firing hosts (endsAt ahead), resolved ones."""
            now = datetime.now(timezone.utc)
            alerts = [{"labels": {"alertname": "BotwatchHostDown", "severity": "critical", "host": host},
                       "startsAt": down[host].isoformat(),
                       "endsAt": (now + timedelta(minutes=4) if now < back[host] else back[host]).isoformat()}
                      for host in down if now >= down[host]]
            for url in urls:
                requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

        def resolved_both() -> bool:
            feed()
            return all(any("RESOLVED" in page.upper() for page in pages(host)) for host in down)

        wait_for(resolved_both, timeout=90, interval=1.0, what="both outages paged and resolved")
        # the window in which the second peer would still send what it waited on: peer timeout + 2 flushes
        t = TIMINGS["fast"]
        quiet_until = time.monotonic() + parse_duration(t["peer_timeout"]) * 2 + parse_duration(t["alertmanager"]["group_interval"]) * 2
        while time.monotonic() < quiet_until:
            feed()
            time.sleep(1)
        for host in down:
            firing = [p for p in pages(host) if "RESOLVED" not in p.upper()]
            resolved = [p for p in pages(host) if "RESOLVED" in p.upper()]
            assert (len(firing), len(resolved)) == (1, 1), (host, pages(host))
        assert not [p for p in pages("host-3") if "host-1" in p], "host-1 came back: no page of host-3 lists it"
    finally:
        daemons.stop()


def test_a_telegram_notice_read_back_as_telegram_gives_it_names_its_alert_and_bot_for_ack(
        tmp_path, alertmanager, telegram):
    """`/ack` is a reply to Alertmanager's message, which Telegram hands back as plain text (the HTML's
    markup gone, its entities decoded): the desk must read the alert's name and bot from that text, as
    the shipped template renders it."""
    import html
    import re as regex

    from botwatch.remediator.talk.desk import NOTICE
    url = alertmanager(rendered(tmp_path, telegram.url, "http://127.0.0.1:9", telegram.token))
    post_alerts(url, [{"labels": {**labels_of("TradingBotDownCritical"), "bot": "doge-long"},
                       "annotations": {"summary": "A trading bot has been down for more than 5 minutes.",
                                       "description": "doge-long is down"}}])
    wait_for(lambda: telegram.messages(), timeout=30, what="the notice")
    plain = html.unescape(regex.sub(r"<[^>]+>", "", telegram.messages()[0]["text"]))
    found = NOTICE.match(plain)
    assert found is not None, plain
    assert (found.group("status"), found.group("alertname"), found.group("bot")) == \
        ("FIRING", "TradingBotDownCritical", "doge-long")
