"""The shipped rules and config, checked by Prometheus' own tools; the mixin's promises about them."""

import re
import subprocess

import pytest
import yaml

from botwatch.core import mixin, scrape
from tests.conftest import ROOT, require_tool

RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))


def documented_alerts() -> set[str]:
    """The alerts docs/alerts.md's table names (its first column), as a user reads them."""
    found = set()
    for line in (ROOT / "docs" / "alerts.md").read_text().splitlines():
        if line.startswith("| `"):
            found.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return found


def promtool(*args):
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def alerts():
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield rule


def test_promtool_check_config():
    result = promtool("check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    assert RULE_TESTS
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    tested = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["exp_alerts"]:
                    tested.add(case["alertname"])
    assert {rule["alert"] for rule in alerts()} <= tested


def test_the_committed_rules_are_what_the_mixin_renders():
    assert (ROOT / "prometheus" / "rules" / "botwatch.rules.yml").read_text() == mixin.render(mixin.CONFIG), \
        "stale: run `make generate`"


@pytest.mark.parametrize("name", sorted(scrape.COMMITTED))
def test_the_committed_prometheus_configs_are_what_the_mixin_renders(name):
    assert (ROOT / name).read_text() == scrape.COMMITTED[name](), "stale: run `make generate`"


def test_the_one_host_prometheus_config_is_valid_and_scrapes_the_jobs_the_alerts_select():
    result = promtool("check", "config", str(ROOT / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    selected = set(re.findall(r'job="([^"]+)"', mixin.render(mixin.CONFIG)))
    assert selected - {mixin.CONFIG["jobs"]["agents"]} <= jobs


def test_the_fast_timings_render_valid_rules(tmp_path):
    path = tmp_path / "fast.yml"
    path.write_text(mixin.render(mixin.FAST))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_alerts_are_the_rules_alerts():
    """The docs' alert table and the shipped rules name the same alerts (a hand-kept list here had drifted)."""
    assert len(documented_alerts()) > 15
    assert documented_alerts() == {rule["alert"] for rule in alerts()}


@pytest.mark.parametrize("rule", list(alerts()), ids=lambda r: f"{r['alert']}-{r['labels'].get('direction') or r['labels'].get('window') or ''}")
def test_each_alert_is_complete(rule):
    assert "for" in rule
    assert rule["labels"]["severity"] in ("remediate", "critical", "warning")
    notes = rule["annotations"]
    assert "{{" not in notes["summary"], "summary is static"
    assert any(f"$labels.{label}" in notes["description"] for label in ("bot", "instance", "integration", "exchange", "host")), \
        "the description names what it is about"
    anchor = notes["runbook_url"].rsplit("#", 1)[1]
    headings = {h.lower() for h in re.findall(r"^## (\S+)$", (ROOT / "runbook.md").read_text(), re.M)}
    assert anchor in headings, f"runbook.md has no section {anchor}"


def test_down_critical_waits_five_minutes_and_down_two_checks():
    by_name = {rule["alert"]: rule for rule in alerts()}
    assert by_name["TradingBotDownCritical"]["for"] == "5m"
    assert by_name["TradingBotDown"]["expr"] == "tradingbot_down_checks >= 2 unless on (bot) tradingbot_paused == 1"


def test_alert_texts_and_runbook_links_follow_the_config():
    changed = dict(mixin.CONFIG, down_checks=3, down_critical_for="10m", slo_target=0.999,
                   runbook_url="https://wiki.example/botwatch")
    rules = {(r["alert"], r["labels"].get("window")): r for r in mixin.alert_rules(changed)}
    assert rules[("TradingBotDown", None)]["annotations"]["summary"] == "A trading bot failed three consecutive checks."
    assert "more than 10 minutes" in rules[("TradingBotDownCritical", None)]["annotations"]["summary"]
    burn = rules[("TradingBotUptimeBudgetBurn", "fast")]
    assert "of its 99.9% uptime budget" in burn["annotations"]["description"]
    assert "ratio_1h < 0.9916" in burn["expr"]          # 1 - 8.4 * 0.001
    assert all(r["annotations"]["runbook_url"].startswith("https://wiki.example/botwatch#") for r in rules.values())


def test_the_generator_takes_its_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fast.yml"
    assert mixin.main(["--fast", "--out", str(out)]) == 0
    assert out.read_text() == mixin.render(mixin.FAST)
    assert not (tmp_path / "--fast").exists()
    with pytest.raises(SystemExit) as exit_:
        mixin.main([])                                  # no prometheus/rules/ here: a usage error, no stray file
    assert exit_.value.code == 2 and list(tmp_path.iterdir()) == [out]
