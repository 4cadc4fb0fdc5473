"""The house's layers: arrows only point down, and the services meet only through Prometheus and Alertmanager.

  top:     botwatch.cli, .stack, .fleet, .postgres, .outbox, .alertmanager, .localexchange, .demo
                                                                                 (nothing imports them)
  wing:    agent, a host's exporter and executor                                 (the rooms, never the top)
  rooms:   exporter, remediator                                                  (never each other, nor the wing)
  ground:  botwatch.core, botwatch.resources                                     (no service, no top)
  apart:   paperbot, a stand-alone bot                                           (imports no botwatch)
Every import counts, those inside functions too.
"""

import ast

import pytest

from tests.conftest import ROOT

TOP = ("botwatch.cli", "botwatch.stack", "botwatch.fleet", "botwatch.postgres", "botwatch.outbox",
       "botwatch.alertmanager", "botwatch.localexchange", "botwatch.demo")
FORBIDDEN = {
    "botwatch.core": ("exporter", "remediator", "paperbot", *TOP),
    "botwatch.resources": ("exporter", "remediator", "paperbot", "botwatch.core", *TOP),
    "agent": ("paperbot", *TOP),
    "exporter": ("remediator", "agent", "paperbot", *TOP),
    "remediator": ("exporter", "agent", "paperbot", *TOP),
    "paperbot": ("botwatch", "exporter", "remediator"),
}


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules():
    for package in ("botwatch", "exporter", "remediator", "agent", "paperbot"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "resources" not in path.relative_to(ROOT).parts[1:2] or path.name == "__init__.py":
                yield path


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_arrows_point_down(path):
    name = module_name(path)
    for layer, forbidden in FORBIDDEN.items():
        if within(name, layer):
            wrong = sorted(i for i in imports(path) for f in forbidden if within(i, f))
            assert not wrong, f"{name} ({layer}) imports {wrong}"


def test_nothing_imports_the_top_but_the_top():
    for path in modules():
        name = module_name(path)
        if any(within(name, top) for top in TOP) or name == "botwatch.__main__":
            continue
        wrong = sorted(i for i in imports(path) for top in TOP if within(i, top))
        assert not wrong, f"{name} imports the top floor: {wrong}"


def test_the_layer_test_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from remediator.engine import Remediator\n")
    assert "remediator.engine" in imports(bad)
