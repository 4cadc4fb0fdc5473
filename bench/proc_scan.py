"""500 bots with process-name liveness: the CPU one check round costs with one /proc scan shared by every
probe (the exporter's way), against a scan per probe (a probe on its own).

Starts BENCH_BOTS (500) small processes, each carrying its bot's name as its argv[0], so the probes
find real processes among everything else on the machine. Prints one JSON line: processes in /proc, the
round's CPU seconds both ways, scans made, and the target (a round ≤ 1 s of CPU).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from botwatch.core.liveness import ProcessNameProbe, ProcessTable

BOTS = int(os.environ.get("BENCH_BOTS", 500))


def cpu_of(round_) -> float:
    started = time.process_time()
    round_()
    return time.process_time() - started


def main() -> None:
    names = [f"bench-bot-{i}" for i in range(BOTS)]
    processes = [subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 600"], start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in names]
    try:
        time.sleep(1.0)      # every child has exec'd sleep under its name
        table = ProcessTable(rounds=True)
        shared = [ProcessNameProbe(name, table=table) for name in names]

        def shared_round():
            table.new_round()
            assert all(probe().up for probe in shared)

        alone = [ProcessNameProbe(name) for name in names]
        shared_cpu = min(cpu_of(shared_round) for _ in range(3))
        alone_cpu = cpu_of(lambda: [probe() for probe in alone])
        print(json.dumps({
            "benchmark": "proc_scan", "bots": BOTS,
            "processes_in_proc": sum(1 for entry in os.listdir("/proc") if entry.isdigit()),
            "round_cpu_s_shared_scan": round(shared_cpu, 3), "scans_per_round_shared": 1,
            "round_cpu_s_scan_per_probe": round(alone_cpu, 3), "scans_per_round_per_probe": BOTS,
            "target_round_cpu_s": 1.0, "meets_target": shared_cpu <= 1.0,
        }))
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
        for process in processes:
            process.wait()


if __name__ == "__main__":
    main()
