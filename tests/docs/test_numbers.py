"""The alert table (docs/alerts.md) and the runbook say the mixin's numbers: every duration and percentage they
give an alert is one its rendered rule has (its `for`, its windows, its texts) — or, in the runbook, one of
the config's defaults it explains (verify_within, backoff, ...). A threshold changed in the mixin and not in
the docs fails here."""

import re

import pytest

from botwatch.core.config import Remediation
from botwatch.core.mixin import CONFIG, alert_rules
from botwatch.core.units import parse_duration
from tests.conftest import ROOT

RULES = alert_rules(CONFIG)
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
SHORT = re.compile(r"(?<![\w.%])(\d+(?:\.\d+)?)(s|m|h|d|w)\b(?!/)")
SPOKEN = re.compile(r"\b(\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten) (second|minute|hour|day|week)s?\b")
WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "ten": 10}
PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def durations(text: str) -> set[float]:
    found = {parse_duration(n + unit) for n, unit in SHORT.findall(text)}
    found |= {(WORDS[n] if n in WORDS else float(n)) * UNITS[unit] for n, unit in SPOKEN.findall(text)}
    return found


def percents(text: str) -> set[float]:
    return {float(p) for p in PERCENT.findall(text)}


def rule_text(alertname: str) -> str:
    return "\n".join(f"{r['expr']} for {r['for']} {r['annotations']['summary']} {r['annotations']['description']}"
                     for r in RULES if r["alert"] == alertname) + "\n" + " ".join(
        str(v) for v in CONFIG.values() if isinstance(v, (str, int, float)))


def rule_numbers(alertname: str) -> tuple[set[float], set[float]]:
    text = rule_text(alertname)
    budget = 100 * (1 - CONFIG["slo_target"])
    shares = {round(100 * CONFIG[b]["factor"] * parse_duration(CONFIG[b]["long"]) / parse_duration(CONFIG["slo_period"]), 1)
              for b in ("burn_fast", "burn_slow")}
    thresholds = {round(100 * (1 - CONFIG[b]["factor"] * (1 - CONFIG["slo_target"])), 1) for b in ("burn_fast", "burn_slow")}
    return durations(text), percents(text) | {100 * CONFIG["slo_target"], round(budget, 1)} | shares | thresholds


def alert_rows() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "docs" / "alerts.md").read_text().splitlines():
        names = re.findall(r"`((?:TradingBot|Botwatch|Exchange)\w+)`", line.split("|")[1]) if line.startswith("| `") else []
        for name in names:
            rows[name] = line
    return rows


def runbook_sections() -> dict[str, str]:
    text = (ROOT / "runbook.md").read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_alert_has_a_row_and_a_runbook_section():
    names = {r["alert"] for r in RULES}
    assert names <= set(alert_rows()), names - set(alert_rows())
    assert names <= set(runbook_sections()), names - set(runbook_sections())


@pytest.mark.parametrize("alertname", sorted({r["alert"] for r in RULES}))
def test_the_alert_table_says_the_rules_numbers(alertname):
    row = alert_rows()[alertname]
    known_durations, known_percents = rule_numbers(alertname)
    assert durations(row) <= known_durations, f"{alertname}: {sorted(durations(row) - known_durations)} s not in its rule"
    assert percents(row) <= known_percents, f"{alertname}: {sorted(percents(row) - known_percents)} % not in its rule"
    severities = {r["labels"]["severity"] for r in RULES if r["alert"] == alertname}
    assert any(severity in row.split("|")[-2] for severity in severities), f"{alertname}: severity {severities}"


def config_durations() -> set[float]:
    defaults = Remediation()
    found = set()
    for value in defaults.model_dump().values():
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                found.add(float(item))
    return found


@pytest.mark.parametrize("alertname", sorted({r["alert"] for r in RULES}))
def test_the_runbook_says_the_rules_numbers(alertname):
    section = runbook_sections()[alertname]
    known_durations, known_percents = rule_numbers(alertname)
    known_durations |= config_durations()
    assert durations(section) <= known_durations, \
        f"{alertname}: {sorted(durations(section) - known_durations)} s not in its rule nor the config's defaults"
    assert percents(section) <= known_percents, f"{alertname}: {sorted(percents(section) - known_percents)} %"


def test_the_number_reader_reads_both_spellings():
    assert durations("for 5m, within 2 minutes, an hour, `[30m]`, 99.5% and 1h") == {300, 120, 3600, 1800}
    assert percents("99.5% and 5%") == {99.5, 5.0}


def test_the_routing_section_says_alertmanagers_grouping():
    import yaml
    group_by = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())["route"]["group_by"]
    assert f"groups by `[{', '.join(group_by)}]`" in (ROOT / "docs" / "alerts.md").read_text()
