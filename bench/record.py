"""Keep what a benchmark or the chaos soak printed, with the commit it ran on: `bench/results/NAME.jsonl`.

    python -m bench.record bench.datafile               # run it, print its lines, keep them
    python -m bench.record chaos.soak --duration 30m    # the same for the soak (any module and its arguments)
    python -m bench.record chaos.soak --from out.jsonl --commit SHA   # keep lines printed by a run made earlier

Each kept line is {"module", "commit", "dirty", "recorded", "machine", "result": the line as printed}; a new
run of a module replaces its file. `make bench` records every bench; the performance table and the chaos
result in docs/operations.md are checked against these files (tests/docs/test_bench_results.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def results(module: str) -> list[dict]:
    """The kept lines of a module's last recorded run."""
    path = RESULTS / f"{module}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def keep(module: str, lines: list[str], commit: str, dirty: bool) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    kept = []
    for line in lines:
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict):
            kept.append(json.dumps({"module": module, "commit": commit, "dirty": dirty, "recorded": stamp,
                                    "machine": machine(), "result": result}))
    if not kept:
        raise SystemExit(f"{module} printed no JSON line: nothing kept")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{module}.jsonl"
    path.write_text("\n".join(kept) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__.split("\n\n")[0])
    p.add_argument("module", help="bench.NAME or chaos.soak")
    p.add_argument("--from", dest="source", help="keep the lines of this file instead of running the module")
    p.add_argument("--commit", help="with --from: the commit that run was made on")
    args, rest = p.parse_known_args(argv)
    if args.source:
        if not args.commit:
            p.error("--from needs --commit: the commit that run was made on")
        commit, dirty = git("rev-parse", args.commit), False
        lines = Path(args.source).read_text().splitlines()
    else:
        # what the benches keep is not the code they measure: `make bench` runs one after another, and each
        # finds the one before it kept its lines
        commit, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no", "--",
                                                           ".", ":(exclude)bench/results"))
        run = subprocess.run([sys.executable, "-m", args.module, *rest], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(run.stdout)
        if run.returncode != 0:
            print(f"{args.module} exited {run.returncode}: nothing kept", file=sys.stderr)
            return run.returncode
        lines = run.stdout.splitlines()
    path = keep(args.module, lines, commit, dirty)
    print(f"kept in {path.relative_to(ROOT)} (commit {commit[:10]}{', uncommitted changes' if dirty else ''})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
