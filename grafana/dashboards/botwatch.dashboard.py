"""botwatch's own health: is it scraping, checking, answering webhooks, backing up, notifying."""

from common import INCREASE, botwatch_dashboard, stat, target, timeseries, up

dashboard = botwatch_dashboard(
    "botwatch / Self", "botwatch-self", panels=[
        stat("Exporter up", [target(up("exporter"), "exporter")], 0, 0),
        stat("Remediator up", [target(up("remediator"), "remediator")], 6, 0),
        stat("Alertmanager up", [target(up("alertmanager"), "alertmanager")], 12, 0),
        stat("Open circuits", [target("sum(botwatch_circuit_open)", "open")], 18, 0),
        timeseries("Exporter scrape duration", [target("botwatch_exporter_scrape_duration_seconds", "scrape")], 0, 4,
                   unit="s"),
        timeseries("Check duration per bot", [target("botwatch_exporter_check_duration_seconds")], 12, 4, unit="s"),
        timeseries("Webhook requests by code",
                   [target("sum by (code) (rate(botwatch_webhook_requests_total[5m]))", "{{code}}")], 0, 12, unit="reqps"),
        timeseries("Remediation duration (p90)",
                   [target("histogram_quantile(0.9, sum by (le, playbook) "
                           "(rate(botwatch_remediation_duration_seconds_bucket[30m])))", "{{playbook}}")], 12, 12, unit="s"),
        timeseries("Age of the last backup",
                   [target("time() - botwatch_last_backup_timestamp_seconds", "{{bot}}")], 0, 20, unit="s"),
        timeseries(f"Backups and notifications ({INCREASE})",
                   [target(f"sum by (outcome) (increase(botwatch_backups_total[{INCREASE}]))", "backups {{outcome}}"),
                    target(f"sum by (outcome) (increase(botwatch_notifications_total[{INCREASE}]))", "telegram {{outcome}}", "B")],
                   12, 20),
    ],
)
