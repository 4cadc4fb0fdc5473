"""The dashboards: generated JSON committed and current, every panel a PromQL query on the one datasource."""

import json

import pytest

from tests.conftest import ROOT

import importlib.util

spec = importlib.util.spec_from_file_location("grafana_generate", ROOT / "grafana" / "generate.py")
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("source", generate.sources(), ids=lambda p: p.name)
def test_generated_json_is_committed_and_current(source):
    committed = generate.target_of(source)
    assert committed.exists(), f"{committed.name} missing: run `python grafana/generate.py`"
    assert committed.read_text() == generate.render(source), f"{committed.name} is stale: run `python grafana/generate.py`"


def panels():
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            yield dashboard["uid"], panel


def test_three_dashboards_with_unique_uids():
    uids = {json.loads(p.read_text())["uid"] for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert uids == {"botwatch-fleet", "botwatch-bot", "botwatch-self"}


@pytest.mark.parametrize("uid, panel", list(panels()), ids=lambda v: v if isinstance(v, str) else v.get("title"))
def test_every_panel_queries_the_provisioned_datasource(uid, panel):
    assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    assert panel["datasource"] == "Prometheus"


def test_the_drill_down_has_a_bot_variable_from_the_exporter():
    bot = json.loads((ROOT / "grafana" / "dashboards" / "bot.json").read_text())
    [variable] = bot["templating"]["list"]
    assert variable["name"] == "bot" and variable["query"] == "label_values(tradingbot_info, bot)"
    assert all('bot="$bot"' in t["expr"] for p in bot["panels"] for t in p["targets"])


def test_provisioning_names_the_datasource_the_dashboards_use():
    import yaml
    source = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["name"] == "Prometheus"


def test_the_overview_picks_hosts_then_their_bots():
    fleet = json.loads((ROOT / "grafana" / "dashboards" / "fleet.json").read_text())
    host, bot = fleet["templating"]["list"]
    assert host["name"] == "host" and host["query"] == "label_values(tradingbot_info, host)"
    assert bot["name"] == "bot" and bot["query"] == 'label_values(tradingbot_info{host=~"$host"}, bot)'
    exprs = [t["expr"] for p in fleet["panels"] for t in p["targets"]]
    assert any("botwatch_agent_last_seen_timestamp_seconds" in e for e in exprs)
    assert any("botwatch_jobs" in e for e in exprs)
