"""`botwatch agent`: serve this host's bots' metrics, and run the jobs the central remediator queues for them.

The exporter part never depends on the remediator: with every remediator unreachable the host's bots
are still watched and Prometheus still scrapes them; the executor keeps polling and says so in the log.
Backups and fill mirrors of the host's bots are made here, where their files are, with a small SQLite
ledger of the agent's own (last backup run); each backup is also told to the remediator, so the central
ledger, report and metrics have it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botwatch.agent.client import RemediatorClient, Unreachable
from botwatch.agent.jobs import RemoteJobs
from botwatch.core.config import Config

log = logging.getLogger("agent")

POLL = 1.0                 # seconds between polls: the heartbeat, and how soon a queued job starts
TROUBLE_LOG_EVERY = 30.0


class Executor:
    """The poll loop: heartbeat + claim, the runner over the claimed jobs, and this host's periodic work."""

    def __init__(self, config: Config, client: RemediatorClient, host: str, address: str, state_dir: Path,
                 clock=time.time, sleep=time.sleep, poll: float = POLL, workers: int = 8):
        from botwatch.remediator.ledger import Ledger
        from botwatch.remediator.metrics import Metrics
        from botwatch.remediator.tell.notifier import Notifier
        from botwatch.remediator.tell.opslog import OperationsLog
        from botwatch.remediator.actions.periodic import PeriodicWork
        from botwatch.remediator.actions.runner import Runner
        from botwatch.remediator.runtimes import runtime_for
        self.config, self.clock, self.poll = config, clock, poll
        self.jobs = RemoteJobs(client, host, address, f"{host}/{os.getpid()}", clock)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="playbook")
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        learned: dict[str, str] = {}
        self.runner = Runner(config, self.jobs, {bot.name: runtime_for(bot, state_dir / "bot-output")
                                                 for bot in config.bots}, self._pool, clock, sleep,
                             on_done=self._wake.set, mirror_dir=state_dir, learned=learned)
        self.ledger = Ledger(state_dir / "agent.sqlite3")
        own = config.model_copy(update={"report": config.report.model_copy(update={"enabled": False})})
        notifier = Notifier(config.telegram, outbox=state_dir / "telegram-outbox.jsonl")
        self.periodic = PeriodicWork(own, self.ledger, OperationsLog(state_dir / "memory" / "bot-operations.md"),
                                     Metrics([bot.name for bot in config.bots], self.ledger), notifier, self._pool,
                                     clock, mirror_dir=state_dir, learned=learned, on_backup=self.jobs.backed_up)
        self._trouble_said = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.runner.dispatch_due()
            except Unreachable as err:
                self._trouble(f"no remediator answers ({err}); watching goes on, jobs wait")
            except Exception as err:  # a refused poll (wrong token, bad host name) or a bug: said, tried again
                self._trouble(f"poll failed: {err}")
            try:
                self.periodic.tick()
            except Exception as err:
                self._trouble(f"periodic work failed: {err}")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _trouble(self, message: str) -> None:
        if self.clock() - self._trouble_said >= TROUBLE_LOG_EVERY:
            self._trouble_said = self.clock()
            log.error("%s", message)


def run(config: Config, host: str, listen: tuple[str, int], advertise: str | None, remediators: list[str],
        token: str, state_dir: Path) -> None:
    from botwatch.core import memory
    from botwatch.core.serve import StartupError, bind, serve
    from botwatch.exporter.app import create_app
    from botwatch.exporter.checkpoints import Checkpoints
    from botwatch.exporter.monitor import Monitor

    local = config.on_host(host)
    if not local.bots:
        log.warning("no bot in %s names host %r: this agent watches nothing", config.path, host)
    address = advertise or f"{listen[0]}:{listen[1]}"
    if address.split(":")[0] in ("0.0.0.0", "::", ""):
        raise StartupError(f"--listen {listen[0]}:{listen[1]}: give --advertise HOST:PORT, the address Prometheus "
                           "scrapes this agent at")
    memory.tune()
    monitor = Monitor(local, checkpoints=Checkpoints(state_dir / "exporter"))
    server = bind(create_app(monitor), listen[0], listen[1], "botwatch agent")
    executor = Executor(local, RemediatorClient(remediators, token), host, address, state_dir)
    monitor.run_once()
    monitor.start()
    executor.start()
    log.info("agent for host %s: %d bot(s), scraped at %s, jobs from %s", host, len(local.bots), address,
             ", ".join(remediators))

    def stop():
        executor.stop()
        monitor.stop()

    serve(server, "botwatch agent", on_stop=stop)
