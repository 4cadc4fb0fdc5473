"""The performance table and the chaos result in docs/operations.md say what `make bench` and `make chaos`
printed, as kept in bench/results/ with the commit they ran on (bench/record.py): every number in a
table's figure and floor columns is one its bench printed (at the precision shown, in s, ms or µs), the
chaos table is the kept soak's, and the text names the commit and the day of the run."""

from __future__ import annotations

import json
import re

import pytest

from bench.record import results
from tests.conftest import ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)")


def section(title: str) -> str:
    start = OPERATIONS.index(title)
    rest = OPERATIONS[start + len(title):]
    end = re.search(r"^#{2,3} ", rest, flags=re.M)
    return rest[:end.start()] if end else rest


def table(text: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    return [row for row in rows[2:]]          # past the header and its rule


def leaves(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return []


def printed(text: str, values: list[float]) -> bool:
    """Whether the number `text` is one of `values` at the precision it is shown with (s, ms, µs or kB)."""
    shown = float(text.replace(",", ""))
    places = len(text.split(".")[1]) if "." in text else 0
    return any(round(v * scale, places) == shown for v in values for scale in (1, 1000, 1e6, 0.001))


def kept(module: str) -> list[dict]:
    lines = results(module)
    assert lines, f"nothing kept for {module}: run `make bench` (or `python -m bench.record {module}`) and commit " \
                  f"bench/results/{module}.jsonl"
    return lines


PERFORMANCE = section("### Performance")


@pytest.mark.parametrize("row", table(PERFORMANCE), ids=lambda row: row[0][:50])
def test_every_figure_in_the_performance_table_is_one_its_bench_printed(row):
    what, figure, floor, bench = row
    module = "bench." + re.search(r"`(\w+)`", bench).group(1)
    values = [x for line in kept(module) for x in leaves(line["result"])]
    wrong = [n for n in NUMBER.findall(f"{figure} {floor}") if not printed(n, values)]
    assert not wrong, f"{what}: {wrong} not in what {module} printed (bench/results/{module}.jsonl)"


def test_the_performance_text_names_the_commit_and_day_the_benches_ran_on():
    lines = [line for path in sorted((ROOT / "bench" / "results").glob("bench.*.jsonl"))
             for line in results(path.stem)]
    assert lines, "no bench results kept"
    commits = {line["commit"][:7] for line in lines}
    days = {line["recorded"][:10] for line in lines}
    assert all(commit in PERFORMANCE for commit in commits), f"name the commit(s) {commits} in the Performance text"
    assert all(day in PERFORMANCE for day in days), f"name the day(s) {days} in the Performance text"
    assert not any(line["dirty"] for line in lines), "a bench run on uncommitted changes is not kept"


CHAOS = section("### Chaos soak")


def soak() -> dict:
    [line] = kept("chaos.soak")
    return line


def test_the_chaos_table_is_the_kept_soak_s_recovery_per_kind():
    result = soak()["result"]
    rows = [row for row in table(CHAOS.split("The last long run")[1]) if len(row) == 3]
    assert rows, "the chaos result table is missing"
    shown = {}
    for fault, injected, times in rows:
        kind = fault.split()[0]
        shown[kind] = (int(injected), [float(x) for x in times.split("/")])
    assert set(shown) == {k for k, n in result["faults"]["by_kind"].items() if n}, "one row per kind of fault injected"
    for kind, (injected, (p50, p95, worst)) in shown.items():
        recovery = result["recovery_s"][kind]
        assert injected == result["faults"]["by_kind"][kind], kind
        assert [p50, p95, worst] == [recovery["p50"], recovery["p95"], recovery["max"]], kind


def test_the_chaos_text_names_the_kept_run_its_commit_day_and_score():
    line = soak()
    result = line["result"]
    after = CHAOS.split("The last long run")[1]
    assert line["commit"][:7] in after and line["recorded"][:10] in after
    block = after.split("```")[1]
    for key, value in (("seed", result["seed"]), ("duration_s", result["duration_s"]), ("ok", result["ok"]),
                       ("http_5xx", result["http_5xx"])):
        assert f'"{key}": {json.dumps(value)}' in block, key
    for key in ("injected", "healed"):
        assert f'"{key}": {result["faults"][key]}' in block, key
    for key in ("lost", "duplicated", "restores_checked"):
        assert f'"{key}": {result["trades"][key]}' in block, key
    for key in ("total", "expected", "duplicate", "spurious"):
        assert f'"{key}": {result["restarts"][key]}' in block, key


README = (ROOT / "README.md").read_text()


def test_the_readmes_restart_figures_are_the_kept_mttr_benchs():
    """The README's "How fast" table: its death rows say what bench.mttr printed at the shipped defaults."""
    start = README.index("## How fast")
    rows = table(README[start:README.index("\n## ", start + 1)])
    assert rows, "the README's timing table is missing"
    parts = {line["result"]["part"]: line["result"] for line in kept("bench.mttr")}
    measured = [row for row in rows if "`mttr`" in row[-1]]
    assert measured, "no row of the README's table comes from bench.mttr"
    for row in measured:
        part = re.search(r"part (\w+)", row[-1]).group(1)
        values = leaves(parts[part])
        wrong = [n for n in NUMBER.findall(" ".join(row[1:-1])) if not printed(n, values)]
        assert not wrong, f"{row[0]}: {wrong} not in what bench.mttr printed for {part}"
