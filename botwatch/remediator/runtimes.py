"""How the remediator stops, starts and restarts a bot: one small interface, one class per runtime.

Commands come only from the config (`start_command`, the container or unit name); nothing from an
alert reaches them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Protocol

from botwatch.core.config import HEALTH_ONLY, Bot
from botwatch.core.liveness import (ComposeProbe, DockerProbe, Liveness, SystemdProbe, _docker_client,
                               compose_project_name, probe_for, process_alive)

log = logging.getLogger(__name__)

LOG_LINES = 20


class RuntimeFailure(Exception):
    """A runtime could not do what was asked; the message says what and why."""


class Runtime(Protocol):
    name: str

    def status(self) -> Liveness: ...
    def stop(self) -> None: ...
    def start(self) -> None: ...
    def restart(self) -> None: ...
    def recent_logs(self, lines: int = LOG_LINES) -> str: ...


def tail_file(path: Path | None, lines: int) -> str:
    """The last `lines` lines of a text file, read from its end (a bot's log can be large)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(deque(data.decode("utf-8", "replace").splitlines(), maxlen=lines))


class ProcessRuntime:
    """A bot run as a plain process: started detached from `start_command`, stopped by signal."""

    name = "process"

    def __init__(self, bot: Bot, output_dir: Path, probe=None):
        self.bot = bot
        self.probe = probe or probe_for(bot)
        self.output = Path(output_dir) / f"{bot.name}.out"

    def status(self) -> Liveness:
        return self.probe()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the bot's stop_timeout; a bot already gone is stopped."""
        pid = self.status().pid
        if not pid or not process_alive(pid):
            return
        log.info("%s: stopping pid %d (SIGTERM)", self.bot.name, pid)
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.bot.stop_timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            log.warning("%s: pid %d ignored SIGTERM for %gs; SIGKILL", self.bot.name, pid, self.bot.stop_timeout)
            _signal(pid, signal.SIGKILL)

    def start(self) -> None:
        if not self.bot.start_command:
            raise RuntimeFailure(f"{self.bot.name}: no start_command in the config, so it can't be started")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        cwd = self.bot.data_file.parent if self.bot.data_file.parent.is_dir() else None
        with open(self.output, "ab") as out:
            try:
                # its own session: the bot outlives the remediator and our signals never reach it
                process = subprocess.Popen(self.bot.start_command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                           start_new_session=True, close_fds=True, cwd=cwd)
            except OSError as err:
                raise RuntimeFailure(f"{self.bot.name}: start_command failed: {err}") from None
        # reap it when it exits, or it would linger as a zombie that looks alive to `kill -0`
        threading.Thread(target=process.wait, name=f"reap-{self.bot.name}", daemon=True).start()
        log.info("%s: started pid %d: %s", self.bot.name, process.pid, " ".join(self.bot.start_command))

    def restart(self) -> None:
        self.stop()
        self.start()

    def recent_logs(self, lines: int = LOG_LINES) -> str:
        return tail_file(self.bot.log_file, lines) or tail_file(self.output, lines)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class DockerRuntime:
    """A bot in a docker container, through the docker SDK."""

    name = "docker"

    def __init__(self, bot: Bot, client_factory: Callable = _docker_client):
        self.bot = bot
        self.probe = DockerProbe(bot.container, client_factory)

    def container(self):
        import docker.errors
        try:
            return self.probe.client().containers.get(self.bot.container)
        except docker.errors.NotFound:
            raise RuntimeFailure(f"{self.bot.name}: no container {self.bot.container!r}") from None
        except Exception as err:  # the daemon is away
            raise RuntimeFailure(f"{self.bot.name}: docker: {err}") from None

    def status(self) -> Liveness:
        return self.probe()

    def stop(self) -> None:
        self.container().stop(timeout=int(self.bot.stop_timeout))

    def start(self) -> None:
        self.container().start()

    def restart(self) -> None:
        self.container().restart(timeout=int(self.bot.stop_timeout))

    def recent_logs(self, lines: int = LOG_LINES) -> str:
        try:
            return self.container().logs(tail=lines).decode("utf-8", "replace").rstrip("\n")
        except RuntimeFailure:
            return tail_file(self.bot.log_file, lines)

    def oom_killed(self) -> bool:
        return bool(self.container().attrs.get("State", {}).get("OOMKilled"))

    def raise_memory_limit(self, cap: int) -> tuple[int, int] | None:
        """Double the memory limit, up to `cap`; (old, new) bytes, or None when it can't go higher."""
        container = self.container()
        current = container.attrs.get("HostConfig", {}).get("Memory") or 0
        if not current or current >= cap:
            return None
        new = min(cap, current * 2)
        # swap must stay at least the memory limit; -1 would mean unlimited swap, which hides OOM
        container.update(mem_limit=new, memswap_limit=new * 2)
        return current, new


class ComposeRuntime:
    """A bot run as a docker compose service: its containers are found by compose's labels."""

    name = "compose"

    def __init__(self, bot: Bot, client_factory: Callable = _docker_client):
        self.bot = bot
        self.project = compose_project_name(bot)
        self.probe = ComposeProbe(bot.compose_service, self.project, client_factory)

    def containers(self):
        labels = [f"com.docker.compose.service={self.bot.compose_service}"]
        if self.project:
            labels.append(f"com.docker.compose.project={self.project}")
        try:
            found = self.probe.docker.client().containers.list(all=True, filters={"label": labels})
        except Exception as err:  # the daemon is away
            raise RuntimeFailure(f"{self.bot.name}: docker: {err}") from None
        if not found:
            raise RuntimeFailure(f"{self.bot.name}: no container of compose service {self.bot.compose_service!r}")
        return found

    def status(self) -> Liveness:
        return self.probe()

    def stop(self) -> None:
        for container in self.containers():
            container.stop(timeout=int(self.bot.stop_timeout))

    def start(self) -> None:
        for container in self.containers():
            container.start()

    def restart(self) -> None:
        for container in self.containers():
            container.restart(timeout=int(self.bot.stop_timeout))

    def recent_logs(self, lines: int = LOG_LINES) -> str:
        try:
            return "\n".join(c.logs(tail=lines).decode("utf-8", "replace").rstrip("\n") for c in self.containers())
        except RuntimeFailure:
            return tail_file(self.bot.log_file, lines)


class SystemdRuntime:
    """A bot run as a systemd unit, through systemctl and journalctl."""

    name = "systemd"

    def __init__(self, bot: Bot, run: Callable = subprocess.run):
        self.bot = bot
        self.run = run
        self.probe = SystemdProbe(bot.systemd_unit, run)

    def _systemctl(self, verb: str) -> None:
        try:
            result = self.run(["systemctl", verb, "--", self.bot.systemd_unit], capture_output=True, text=True,
                              timeout=self.bot.stop_timeout + 30)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RuntimeFailure(f"{self.bot.name}: systemctl {verb}: {err}") from None
        if result.returncode != 0:
            raise RuntimeFailure(f"{self.bot.name}: systemctl {verb}: {result.stderr.strip()[:300]}")

    def status(self) -> Liveness:
        return self.probe()

    def stop(self) -> None:
        self._systemctl("stop")

    def start(self) -> None:
        self._systemctl("start")

    def restart(self) -> None:
        self._systemctl("restart")

    def recent_logs(self, lines: int = LOG_LINES) -> str:
        try:
            result = self.run(["journalctl", "--no-pager", "-n", str(lines), "-u", self.bot.systemd_unit],
                              capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                return result.stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            pass
        return tail_file(self.bot.log_file, lines)


class HealthOnlyRuntime:
    """A bot known only by its health endpoint: it can be checked, not started or stopped."""

    name = HEALTH_ONLY

    def __init__(self, bot: Bot):
        self.bot = bot

    def status(self) -> Liveness:
        return Liveness(True, "no liveness source: the health endpoint decides")

    def _cannot(self, *_args):
        raise RuntimeFailure(f"{self.bot.name}: no process, container or unit in the config: can't stop or start it")

    stop = start = restart = _cannot

    def recent_logs(self, lines: int = LOG_LINES) -> str:
        return tail_file(self.bot.log_file, lines)


# a bot's runtime kind (config.RUNTIME_KEYS) -> how to stop and start it (bot, output dir, docker client, run)
RUNTIMES = {
    "process": lambda bot, output_dir, docker_client, run: ProcessRuntime(bot, output_dir),
    "docker": lambda bot, output_dir, docker_client, run: DockerRuntime(bot, docker_client),
    "compose": lambda bot, output_dir, docker_client, run: ComposeRuntime(bot, docker_client),
    "systemd": lambda bot, output_dir, docker_client, run: SystemdRuntime(bot, run),
}


def runtime_for(bot: Bot, output_dir: Path, docker_client: Callable = _docker_client,
                run: Callable = subprocess.run) -> Runtime:
    make = RUNTIMES.get(bot.runtime)
    return make(bot, output_dir, docker_client, run) if make else HealthOnlyRuntime(bot)
