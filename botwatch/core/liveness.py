"""Is the bot's process alive? One probe per way a bot can run: process, docker, compose, systemd.

Every probe answers a `Liveness`; none raises for a bot that is down or a runtime that can't be reached
(that is `up=False` with the reason in `detail`, and `error=True` when we could not tell).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
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


# programs that run a script: the script (or `-m` module) names the process, as its comm and argv[0] can't
INTERPRETER = re.compile(rb"(python|pypy)[0-9.]*|node|nodejs|bun|deno|ruby|perl|php|bash|sh|dash|zsh|Rscript")
# interpreter options that take the next argument as their value (not the script)
VALUE_OPTIONS = {b"-W", b"-X", b"-Q", b"-r", b"--require", b"-I", b"--import", b"--loader"}


def process_names(comm: bytes, argv: list[bytes]) -> set[bytes]:
    """The names a process answers to, the way pgrep and process-exporter name one: its comm, its program
    (argv[0] and its basename), and for an interpreter its script (path, basename, basename without
    extension) or `-m` module. Never its other arguments: `tail -f doge_long_bot.log` and `grep doge_long_bot`
    are not the bot."""
    names = {comm}
    if not argv:
        return names
    names.update((argv[0], os.path.basename(argv[0])))
    if INTERPRETER.fullmatch(os.path.basename(argv[0])):
        script = _script(argv[1:])
        if script:
            base = os.path.basename(script)
            names.update((script, base, os.path.splitext(base)[0]))
    names.discard(b"")
    return names


def _script(args: list[bytes]) -> bytes | None:
    """The script an interpreter runs (or the module after -m); None for -c/-e code or a bare interpreter."""
    it = iter(args)
    for arg in it:
        if arg in (b"-m",):
            return next(it, None)
        if arg in (b"-c", b"-e", b"--eval", b"-"):
            return None
        if arg in VALUE_OPTIONS:
            next(it, None)
            continue
        if arg.startswith(b"-"):
            continue
        return arg
    return None


class ProcessTable:
    """One scan of /proc, indexed by every name a process-name probe matches (`process_names`), shared by the
    probes of one exporter; the command lines too, for `process_cmdline` probes.

    `lookup()` scans when the table is stale: always, unless a round has begun (`new_round()`, called by the
    exporter's scheduler before it starts a batch of checks), in which case the first lookup of the round
    scans and the others read its index. A pid found is confirmed alive when looked up, so a process that
    died since the scan reads as gone.
    """

    def __init__(self, proc: Path = Path("/proc"), rounds: bool = False):
        self.proc = Path(proc)
        self.rounds = rounds           # False: every lookup scans (a probe on its own)
        self.scans = 0
        self._index: dict[bytes, list[int]] | None = None
        self._cmdlines: list[tuple[int, str]] = []
        self._error: str | None = None
        self._lock = threading.Lock()

    def new_round(self) -> None:
        with self._lock:
            self._index = None

    def lookup(self, name: str) -> tuple[int | None, str | None]:
        """(the lowest live pid known by this name, None), or (None, why the table could not be read)."""
        index, _, error = self._current()
        if error:
            return None, error
        return self._first_alive(index.get(name.encode(), ())), None

    def search(self, pattern: re.Pattern) -> tuple[int | None, str | None]:
        """(the lowest live pid whose command line, arguments joined by spaces, matches the regex, None),
        or (None, why the table could not be read)."""
        _, cmdlines, error = self._current()
        if error:
            return None, error
        return self._first_alive(pid for pid, cmdline in cmdlines if pattern.search(cmdline)), None

    def _current(self):
        with self._lock:
            if self._index is None or not self.rounds:
                self._scan()
            return self._index, self._cmdlines, self._error

    def _first_alive(self, pids) -> int | None:
        return next((pid for pid in pids if _alive(_proc_state(self.proc, pid))), None)

    def _scan(self) -> None:
        self.scans += 1
        index: dict[bytes, list[int]] = {}
        cmdlines: list[tuple[int, str]] = []
        try:
            entries = sorted(int(entry) for entry in os.listdir(self.proc) if entry.isdigit())
        except OSError as err:
            self._index, self._cmdlines, self._error = {}, [], f"cannot list {self.proc}: {err.strerror}"
            return
        me = os.getpid()
        for pid in entries:
            if pid == me:
                continue
            base = f"{self.proc}/{pid}"
            try:
                with open(f"{base}/comm", "rb") as f:
                    comm = f.read().rstrip(b"\n")
                with open(f"{base}/cmdline", "rb") as f:
                    argv = [arg for arg in f.read().split(b"\0") if arg]
            except OSError:
                continue       # gone since the listing
            for key in process_names(comm, argv):
                index.setdefault(key, []).append(pid)
            if argv:
                cmdlines.append((pid, b" ".join(argv).decode("utf-8", "replace")))
        self._index, self._cmdlines, self._error = index, cmdlines, None


def _table_liveness(found: tuple[int | None, str | None], missing: str, seen: str) -> Liveness:
    """A process-table answer as liveness: unknown when /proc could not be read, else up or down."""
    pid, error = found
    if error:
        return Liveness(False, error, error=True)
    if pid is None:
        return Liveness(False, missing)
    return Liveness(True, seen.format(pid=pid), pid)


class ProcessNameProbe:
    """Up when a live process answers to this name (`process_names`: comm, program, or script)."""

    def __init__(self, name: str, proc: Path = Path("/proc"), table: ProcessTable | None = None):
        self.name = name
        self.table = table or ProcessTable(proc)

    def __call__(self) -> Liveness:
        return _table_liveness(self.table.lookup(self.name), f"no process named {self.name!r}",
                               f"process {self.name!r} is pid {{pid}}")


class ProcessCmdlineProbe:
    """Up when a live process's whole command line matches this regex (`process_cmdline`, for a bot that only
    its arguments tell apart, e.g. one Freqtrade of several by its --config)."""

    def __init__(self, pattern: str, proc: Path = Path("/proc"), table: ProcessTable | None = None):
        self.pattern = re.compile(pattern)
        self.table = table or ProcessTable(proc)

    def __call__(self) -> Liveness:
        shown = self.pattern.pattern.replace("{", "{{").replace("}", "}}")
        return _table_liveness(self.table.search(self.pattern),
                               f"no process whose command line matches {self.pattern.pattern!r}",
                               f"pid {{pid}}'s command line matches {shown!r}")


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


def _process_probe(bot: Bot, proc: Path, docker_client: Callable, processes: ProcessTable | None):
    if bot.pidfile:
        return PidfileProbe(bot.pidfile, proc)
    if bot.process_name:
        return ProcessNameProbe(bot.process_name, proc, processes)
    return ProcessCmdlineProbe(bot.process_cmdline, proc, processes)


# a bot's runtime kind (config.RUNTIME_KEYS) -> its probe (bot, /proc, docker client, shared process table)
PROBES = {
    "process": _process_probe,
    "docker": lambda bot, proc, docker_client, processes: DockerProbe(bot.container, docker_client),
    "compose": lambda bot, proc, docker_client, processes: ComposeProbe(bot.compose_service,
                                                                        compose_project_name(bot), docker_client),
    "systemd": lambda bot, proc, docker_client, processes: SystemdProbe(bot.systemd_unit),
}


# how each runtime's death can be an event (botwatch.core.deaths): its process through a pidfd (a systemd unit:
# its MainPID), or its container through docker's event stream
DEATH_EVENTS = {"process": "pid", "systemd": "pid", "docker": "container", "compose": "container"}


def probe_for(bot: Bot, proc: Path = Path("/proc"), docker_client: Callable = _docker_client,
              processes: ProcessTable | None = None):
    """The liveness probe for a bot's runtime, or None for a bot watched by its health endpoint alone;
    process-name probes share `processes` when given (one /proc scan per round)."""
    make = PROBES.get(bot.runtime)
    return make(bot, proc, docker_client, processes) if make else None
