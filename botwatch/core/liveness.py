"""Is the bot's process alive? One probe per way a bot can run: process, docker, compose, systemd.

Every probe answers a `Liveness`; none raises for a bot that is down or a runtime that can't be reached
(that is `up=False` with the reason in `detail`, and `error=True` when we could not tell).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from botwatch.core.config import Bot


@dataclass(frozen=True)
class Liveness:
    up: bool
    detail: str
    pid: int | None = None
    error: bool = False          # the runtime could not be asked: "down" is a guess


def _proc_state(proc: Path, pid: int) -> str | None:
    """The one-letter state of a process from /proc/PID/stat, or None when there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces or ')': the state follows the last ')'
    return stat[stat.rfind(")") + 2:][:1]


def _alive(state: str | None) -> bool:
    return state is not None and state not in ("Z", "X", "x")


def process_alive(pid: int, proc: Path = Path("/proc")) -> bool:
    """A process with this pid exists and is not a zombie."""
    return _alive(_proc_state(proc, pid))


class PidfileProbe:
    """Up when the pid in the pidfile names a live (not zombie) process."""

    def __init__(self, pidfile: Path, proc: Path = Path("/proc")):
        self.pidfile = Path(pidfile)
        self.proc = Path(proc)

    def __call__(self) -> Liveness:
        try:
            text = self.pidfile.read_text().strip()
        except FileNotFoundError:
            return Liveness(False, f"no pidfile {self.pidfile}")
        except OSError as err:
            return Liveness(False, f"pidfile {self.pidfile}: {err.strerror}", error=True)
        if not text.isdigit():
            return Liveness(False, f"pidfile {self.pidfile} holds {text[:20]!r}, not a pid")
        pid = int(text)
        state = _proc_state(self.proc, pid)
        if not _alive(state):
            return Liveness(False, f"pid {pid} from {self.pidfile} is {'a zombie' if state else 'gone'}", pid)
        return Liveness(True, f"pid {pid} state {state}", pid)


class ProcessNameProbe:
    """Up when a live process has this name (comm), or this exact argv element (or its basename)."""

    def __init__(self, name: str, proc: Path = Path("/proc")):
        self.name = name
        self.proc = Path(proc)

    def __call__(self) -> Liveness:
        try:
            entries = [entry for entry in os.listdir(self.proc) if entry.isdigit()]
        except OSError as err:
            return Liveness(False, f"cannot list {self.proc}: {err.strerror}", error=True)
        me = os.getpid()
        for entry in entries:
            pid = int(entry)
            if pid != me and self._matches(pid) and _alive(_proc_state(self.proc, pid)):
                return Liveness(True, f"process {self.name!r} is pid {pid}", pid)
        return Liveness(False, f"no process named {self.name!r}")

    def _matches(self, pid: int) -> bool:
        base = self.proc / str(pid)
        try:
            if (base / "comm").read_text().rstrip("\n") == self.name:
                return True
            argv = (base / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        wanted = self.name.encode()
        return any(arg == wanted or os.path.basename(arg) == wanted for arg in argv if arg)


def _docker_client():
    import docker
    return docker.from_env(timeout=10)


class DockerProbe:
    """Up when the named container is running and not reported unhealthy by its own healthcheck."""

    def __init__(self, container: str, client_factory: Callable = _docker_client):
        self.container = container
        self.client_factory = client_factory
        self._client = None

    def client(self):
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def __call__(self) -> Liveness:
        import docker.errors
        try:
            container = self.client().containers.get(self.container)
        except docker.errors.NotFound:
            return Liveness(False, f"no container {self.container!r}")
        except Exception as err:  # the daemon is away: requests, docker and OS errors alike
            self._client = None
            return Liveness(False, f"docker: {err}", error=True)
        return _container_liveness(container)


def _container_liveness(container) -> Liveness:
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    pid = state.get("Pid") or None
    if state.get("Status") != "running":
        reason = " (OOM-killed)" if state.get("OOMKilled") else ""
        return Liveness(False, f"container {container.name} is {state.get('Status')}{reason}, "
                               f"exit code {state.get('ExitCode')}", pid)
    if health == "unhealthy":
        return Liveness(False, f"container {container.name} is running but unhealthy", pid)
    return Liveness(True, f"container {container.name} is running", pid)


def compose_project_name(bot: Bot) -> str | None:
    """The compose project: as configured, else what compose derives from the compose file's folder."""
    if bot.compose_project:
        return bot.compose_project
    if bot.compose_file:
        folder = Path(bot.compose_file).resolve().parent.name.lower()
        return "".join(ch for ch in folder if ch.isalnum() or ch in "-_")
    return None


class ComposeProbe:
    """Up when a container of the compose service (in its project, if known) is running."""

    def __init__(self, service: str, project: str | None, client_factory: Callable = _docker_client):
        self.service = service
        self.project = project
        self.docker = DockerProbe(service, client_factory)

    def __call__(self) -> Liveness:
        labels = [f"com.docker.compose.service={self.service}"]
        if self.project:
            labels.append(f"com.docker.compose.project={self.project}")
        try:
            containers = self.docker.client().containers.list(all=True, filters={"label": labels})
        except Exception as err:  # the daemon is away
            self.docker._client = None
            return Liveness(False, f"docker: {err}", error=True)
        if not containers:
            return Liveness(False, f"no container for compose service {self.service!r}")
        results = [_container_liveness(c) for c in containers]
        return next((r for r in results if r.up), results[0])


class SystemdProbe:
    """Up when `systemctl show` reports the unit active."""

    def __init__(self, unit: str, run: Callable = subprocess.run):
        self.unit = unit
        self.run = run

    def __call__(self) -> Liveness:
        try:
            result = self.run(["systemctl", "show", "--property=ActiveState,SubState,MainPID", "--", self.unit],
                              capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as err:
            return Liveness(False, f"systemctl: {err}", error=True)
        if result.returncode != 0:
            return Liveness(False, f"systemctl: {result.stderr.strip()[:200]}", error=True)
        props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        pid = int(props.get("MainPID", "0") or 0) or None
        active = props.get("ActiveState", "unknown")
        detail = f"unit {self.unit} is {active} ({props.get('SubState', '?')})"
        return Liveness(active == "active", detail, pid)


def probe_for(bot: Bot, proc: Path = Path("/proc"), docker_client: Callable = _docker_client):
    """The liveness probe for a bot's runtime, or None for a bot watched by its health endpoint alone."""
    if bot.pidfile:
        return PidfileProbe(bot.pidfile, proc)
    if bot.process_name:
        return ProcessNameProbe(bot.process_name, proc)
    if bot.container:
        return DockerProbe(bot.container, docker_client)
    if bot.compose_service:
        return ComposeProbe(bot.compose_service, compose_project_name(bot), docker_client)
    if bot.systemd_unit:
        return SystemdProbe(bot.systemd_unit)
    return None
