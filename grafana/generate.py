"""Render grafana/dashboards/*.dashboard.py to the JSON Grafana loads: `python grafana/generate.py`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"


def render(source: Path) -> str:
    sys.path.insert(0, str(DASHBOARDS))
    try:
        spec = importlib.util.spec_from_file_location(source.stem.replace(".", "_"), source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DASHBOARDS))
    return json.dumps(module.dashboard.to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def sources() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.dashboard.py"))


def target_of(source: Path) -> Path:
    return source.with_name(source.name.replace(".dashboard.py", ".json"))


if __name__ == "__main__":
    for source in sources():
        target_of(source).write_text(render(source))
        print(f"wrote {target_of(source)}")
