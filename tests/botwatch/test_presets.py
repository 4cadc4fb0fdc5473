"""Kinds of bot are plug-ins: one module each, named in one table; nothing else compares their names.

A third kind, defined here and nowhere in botwatch, proves the two-file promise of docs/bots.md ("Adding a bot
kind"): its module (this file's `ToyBot`) and its registration; the config, the checks and the exporter's
store then serve it without a change.
"""

import ast
import json

import pytest

from botwatch.core import presets
from botwatch.core.checks import BotCheck
from botwatch.core.config import RUNTIME_KEYS, HEALTH_ONLY, ConfigError, config_from_mapping
from botwatch.core.liveness import PROBES
from botwatch.core.presets.kind import BotKind
from botwatch.core.stores.csv_store import CsvStore
from botwatch.remediator.restore.kinds import RECOVERY
from botwatch.remediator.runtimes import RUNTIMES
from tests.conftest import ROOT

# the tables that may name a kind or a runtime; everywhere else asks them
TABLES = {"botwatch/core/presets", "botwatch/core/config.py", "botwatch/core/liveness.py",
          "botwatch/remediator/runtimes.py", "botwatch/remediator/restore/kinds.py"}


def names_compared(path) -> list[str]:
    """String constants a module compares a value with (==, !=, in, not in) that name a kind or a runtime."""
    watched = set(presets.KINDS) | set(RUNTIME_KEYS) | {HEALTH_ONLY}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                found += [f"{path.name}:{node.lineno} {v.value!r}" for v in values
                          if isinstance(v, ast.Constant) and v.value in watched]
    return found


def test_no_module_outside_the_tables_compares_a_kind_or_runtime_name():
    found = []
    for path in sorted((ROOT / "botwatch").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if not any(where == table or where.startswith(table + "/") for table in TABLES):
            found += names_compared(path)
    assert found == []


def test_the_grep_sees_a_comparison(tmp_path):
    (tmp_path / "bad.py").write_text('if bot.preset == "hummingbot" or kind in ("docker", "x"):\n    pass\n')
    assert [f.split()[-1] for f in names_compared(tmp_path / "bad.py")] == ["'hummingbot'", "'docker'"]


def test_every_runtime_has_a_probe_and_a_runtime_and_every_database_kind_a_store():
    assert set(PROBES) == set(RUNTIMES) == set(RUNTIME_KEYS)
    assert set(RECOVERY) <= {name for name, kind in presets.KINDS.items() if kind.database}


class ToyBot(BotKind):
    """A bot that logs `TOY-AUTH` when its key is refused and whose CSV trade file is botwatch's own format."""

    name = "toybot"
    error_patterns = {"auth": [r"TOY-AUTH"]}
    stuck_after = "7m"

    def open_store(self, bot, clock):
        return CsvStore(bot, clock)


@pytest.fixture
def toybot():
    presets.register(ToyBot())
    yield
    del presets.KINDS["toybot"]


def test_a_kind_added_from_outside_is_a_valid_preset_with_its_defaults_and_store(toybot, tmp_path):
    (tmp_path / "toy.csv").write_text("timestamp,trade_id,symbol,side,price,qty,fee\n"
                                      "2026-12-01T00:00:00Z,1,BTC/USDT,buy,100,1,0.1\n")
    (tmp_path / "toy.log").write_text("")
    config = config_from_mapping({"bots": [{"name": "toy", "preset": "toybot", "pidfile": str(tmp_path / "toy.pid"),
                                            "data_file": str(tmp_path / "toy.csv"), "log_file": str(tmp_path / "toy.log")}]})
    bot = config.bots[0]
    assert bot.kind.name == "toybot" and bot.store == "toybot" and bot.stuck_after == 420
    assert bot.error_patterns.auth == ["TOY-AUTH"] and bot.error_patterns.other is None
    check = BotCheck(bot)
    try:
        (tmp_path / "toy.log").write_text("12:00 TOY-AUTH refused\n")
        status = check.run()
    finally:
        check.close()
    assert isinstance(check.store, CsvStore) and status.datafile.valid and status.datafile.rows == 1
    assert status.api_errors["auth"] == 1
    assert not status.up and status.liveness is not None       # no pid file: its process is down


def test_an_unknown_preset_names_the_ones_there_are():
    with pytest.raises(ConfigError) as err:
        config_from_mapping({"bots": [{"name": "x", "preset": "freqtrad", "pidfile": "x.pid", "data_file": "x.csv"}]})
    assert "preset" in str(err.value) and "'freqtrad'" in str(err.value) and "freqtrade, hummingbot" in str(err.value)
    json.dumps(presets.names())
