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
import time
from pathlib import Path

from botwatch.agent.client import RemediatorClient, Unreachable
from botwatch.agent.jobs import RemoteJobs
from botwatch.core.config import Config
from botwatch.core.loop import ServiceLoop

log = logging.getLogger("agent")

POLL = 1.0                 # seconds between polls: the heartbeat, and how soon a queued job starts


class Executor(ServiceLoop):
    """The poll loop: heartbeat + claim, the runner over the claimed jobs, and this host's periodic work."""

    name = "executor"

    def __init__(self, config: Config, client: RemediatorClient, host: str, address: str, state_dir: Path,
                 clock=time.time, sleep=time.sleep, poll: float = POLL, workers: int = 8):
        from botwatch.remediator.executor import Records, build_executor
        from botwatch.remediator.intent.stops import deliberate
        super().__init__(clock)
        self.config, self.poll = config, poll
        self.jobs = RemoteJobs(client, host, address, f"{host}/{os.getpid()}", clock)
        own = config.model_copy(update={"report": config.report.model_copy(update={"enabled": False})})
        records = Records.open(own, state_dir, state_dir / "agent.sqlite3")
        self.ledger = records.ledger
        executor = build_executor(own, self.jobs, records, state_dir, self.wake, clock=clock, sleep=sleep,
                                  workers=workers, on_backup=self.jobs.backed_up)
        self.runner, self.periodic, self._pool = executor.runner, executor.periodic, executor.pool
        self.runner.intent = deliberate        # a container or unit its operator stopped is held, not restarted

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def step(self) -> float:
        try:
            self.runner.dispatch_due()
        except Unreachable as err:
            self.trouble(f"no remediator answers ({err}); watching goes on, jobs wait", "poll")
        except Exception as err:  # a refused poll (wrong token, bad host name) or a bug: said, tried again
            self.trouble(f"poll failed: {err}", "poll")
        try:
            self.periodic.tick()
        except Exception as err:
            self.trouble(f"periodic work failed: {err}", "periodic")
        return self.poll


def run(config: Config, host: str, listen: tuple[str, int], advertise: str | None, remediators: list[str],
        token: str, state_dir: Path, web=None, ca_file: str | None = None) -> None:
    """Serve the host's metrics (behind `web`, the listener's --web-config) and run its jobs, calling the
    remediators with this host's agent token, verifying https ones against `ca_file` (else the system's CAs)."""
    from botwatch.core import memory, webconfig
    from botwatch.core.serve import StartupError, bind, serve
    from botwatch.exporter.app import create_app, start_exchange_looks
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
    web = web or webconfig.WebConfig()
    server = bind(webconfig.guard(create_app(monitor), web), listen[0], listen[1], "botwatch agent", web=web)
    webconfig.say_openness(web, listen[0], "botwatch agent", ["/metrics", "/"])
    executor = Executor(local, RemediatorClient(remediators, token, ca_file=ca_file), host, address, state_dir)
    executor.jobs.on_paused = lambda paused: setattr(monitor, "paused", paused)    # tradingbot_paused
    # up, and (a preset bot) running by its own word: what ends a stop by its operator
    executor.jobs.up_bots = lambda: [name for name, status in monitor.snapshot().items() if status.up and (
        status.loop is None or status.loop.state in (None, "running"))]
    monitor.run_once()
    monitor.start()
    looks = start_exchange_looks(monitor)    # this host's clock against its bots' exchanges, their balances
    executor.start()
    fast = None
    if local.remediation.fast_path:
        from botwatch.exporter.fastpath import FastPath
        line = RemediatorClient(remediators, token, ca_file=ca_file)     # its own session: the poll's is the executor's

        def tell(death) -> str:
            answer = line.post("/agent/death", {"host": host, "bot": death.bot, "at": death.at, "detail": death.detail})
            executor.wake()                                 # the restart job is claimed by the next poll: now
            return str(answer.get("outcome", "?"))
        fast = FastPath(monitor, tell)
        fast.start()
    log.info("agent for host %s: %d bot(s), scraped at %s, jobs from %s", host, len(local.bots), address,
             ", ".join(remediators))

    def stop():
        for part in (fast, *looks):
            if part is not None:
                part.stop()
        executor.stop()
        monitor.stop()

    serve(server, "botwatch agent", on_stop=stop)
