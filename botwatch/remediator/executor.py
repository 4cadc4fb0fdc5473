"""What runs one host's playbooks and periodic work, wired in one place for the remediator (its own host's
bots, jobs from its ledger) and for an agent (its host's bots, jobs claimed from the central remediator).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from botwatch.core.config import Config
from botwatch.remediator.actions.periodic import PeriodicWork
from botwatch.remediator.actions.runner import JobSource, Runner
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.metrics import Metrics
from botwatch.remediator.runtimes import runtime_for
from botwatch.remediator.tell.notifier import Notifier
from botwatch.remediator.tell.opslog import OperationsLog


@dataclass
class Records:
    """Where a remediator or an agent keeps what happened: its ledger, operations log, metrics and notices."""

    ledger: Ledger
    opslog: OperationsLog
    metrics: Metrics
    notifier: Notifier

    @classmethod
    def open(cls, config: Config, data_dir: Path, ledger: Path | str | None = None, metrics: Metrics | None = None,
             notifier: Notifier | None = None) -> Records:
        data_dir = Path(data_dir)
        book = Ledger(ledger or data_dir / "ledger.sqlite3")
        metrics = metrics or Metrics([bot.name for bot in config.bots], book)
        notifier = notifier or Notifier(config.telegram, outbox=data_dir / "telegram-outbox.jsonl")
        notifier.on_outcome = lambda outcome: metrics.notifications.labels(outcome).inc()
        return cls(book, OperationsLog(data_dir / "memory" / "bot-operations.md"), metrics, notifier)


@dataclass
class Executor:
    runner: Runner            # claimed jobs -> playbooks -> outcomes
    periodic: PeriodicWork    # fill mirrors, backups, the report
    pool: ThreadPoolExecutor  # both run their work here
    learned: dict[str, str]   # bot -> exchange, as its own API said (the mirrors learn it, the playbooks use it)


def build_executor(config: Config, jobs: JobSource, records: Records, data_dir: Path, on_done: Callable[[], None],
                   *, host: str | None = None, runner_config: Config | None = None,
                   clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                   runtime_factory: Callable | None = None, restore: Callable | None = None, workers: int = 8,
                   on_backup: Callable | None = None) -> Executor:
    """The runner over `jobs` for the bots of `runner_config` (default: `config`'s), and the periodic work of
    `host`'s bots (all of `config`'s without one), in one pool; bot output and fill mirrors under `data_dir`."""
    data_dir = Path(data_dir)
    factory = runtime_factory or (lambda bot: runtime_for(bot, data_dir / "bot-output"))
    runs = runner_config or config
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="playbook")
    learned: dict[str, str] = {}
    runner = Runner(runs, jobs, {bot.name: factory(bot) for bot in runs.bots}, pool, clock, sleep, restore,
                    on_done=on_done, mirror_dir=data_dir, learned=learned)
    periodic = PeriodicWork(config, records.ledger, records.opslog, records.metrics, records.notifier, pool, clock,
                            mirror_dir=data_dir, learned=learned, host=host, on_backup=on_backup)
    return Executor(runner, periodic, pool, learned)
