"""The house's layers, read from its folders: arrows only point down, and rooms on one floor never meet.

  floor 6  botwatch/__main__.py                  `python -m botwatch`
  floor 5  botwatch/cli.py                      the command line                  (only __main__ imports it)
  floor 4  botwatch/up/                          `botwatch up`: stack, fleet, PostgreSQL, stand-ins
  floor 3  botwatch/agent/                       a host's exporter and executor
  floor 2  botwatch/exporter/, botwatch/remediator/   the two services          (never each other)
  floor 1  botwatch/core/, botwatch/resources/, botwatch/__init__.py   the ground   (no service)
  apart    botwatch/up/standins/                 the world's stand-ins: a paper bot, an exchange, Telegram's
                                                 outbox; they import nothing of botwatch but each other
A module is in the room of the folder (or file) it sits in under botwatch/: a new file needs no entry here,
a new folder does (the test below fails until it has a floor). Every import counts, those inside functions too.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "botwatch"
FLOORS = {"__init__": 1, "core": 1, "resources": 1, "exporter": 2, "remediator": 2, "agent": 3, "up": 4,
          "cli": 5, "__main__": 6}
APART = "botwatch.up.standins"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(name: str) -> str:
    """The room a module of botwatch sits in: its first folder or file under botwatch/."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def botwatch_imports(path: Path) -> set[str]:
    """The modules of botwatch that `path` imports (`from botwatch import x` names botwatch.x when x is one)."""
    found = set()
    for name in imports(path):
        if name != "botwatch" and not name.startswith("botwatch."):
            continue
        parts = name.split(".")
        while len(parts) > 1 and not (ROOT.joinpath(*parts).is_dir() or ROOT.joinpath(*parts[:-1], parts[-1] + ".py").exists()):
            parts.pop()
        found.add(".".join(parts))
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "resources" not in path.relative_to(PACKAGE).parts[:1] or path.name == "__init__.py":
            yield path


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_room_of_the_package_has_a_floor():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and any(p.rglob("*.py"))) or p.suffix == ".py"}
    assert rooms <= set(FLOORS), f"give these a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_arrows_point_down(path):
    name = module_name(path)
    wrong = []
    for target in botwatch_imports(path):
        if within(name, APART):
            if not within(target, APART):
                wrong.append(f"{target} (a stand-in imports nothing of botwatch)")
        elif room(target) != room(name) and FLOORS[room(target)] >= FLOORS[room(name)]:
            wrong.append(f"{target} (floor {FLOORS[room(target)]}, from floor {FLOORS[room(name)]})")
    assert not wrong, f"{name} imports {wrong}"


def test_the_layer_test_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from botwatch.remediator.engine import Remediator\n"
                   "from botwatch import cli\n")
    assert {"botwatch.remediator.engine", "botwatch.cli"} <= botwatch_imports(bad)
    assert FLOORS[room("botwatch.remediator.engine")] == FLOORS[room("botwatch.exporter.app")]
    assert FLOORS[room("botwatch.cli")] > FLOORS[room("botwatch.up.stack")]
