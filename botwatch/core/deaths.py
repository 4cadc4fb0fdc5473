"""Death as an event: the moment a watched bot's process or container ends, not the next poll.

A process (and a systemd unit's main process) through a pidfd (Linux >= 5.3): readable once the process has
ended, waited on with epoll in one thread for every bot, re-armed by the checks whenever they find a new
pid. A container through the docker event stream (`die`, `oom`): a `die` that an API `kill` or `stop` of the
same container came just before is its operator's (or botwatch's own restart), not a death. A health
endpoint that stops answering, a hang and a corrupt file are not events: they keep the two-check rule.

`DeathWatch` only tells; what follows a death (a check at once, a restart through the remediator's job path)
is its listener's.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from botwatch.core.liveness import DEATH_EVENTS, _docker_client, compose_project_name

if TYPE_CHECKING:
    from botwatch.core.config import Bot

log = logging.getLogger(__name__)

DELIBERATE_WINDOW = 60.0     # seconds an API kill/stop of a container covers the `die` that follows it
RECONNECT = (0.5, 10.0)      # the docker event stream's reconnect wait: first, longest


@dataclass(frozen=True)
class Death:
    bot: str
    at: float            # when it ended (epoll's wake-up, or the docker event's own time)
    detail: str
    pid: int | None = None


def pidfd_supported() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class PidWatch:
    """One epoll over a pidfd per bot. `watch(bot, pid)` arms (or re-arms, or with None disarms) a bot; a
    pid that is already gone when armed is a death at once."""

    def __init__(self, on_death: Callable[[Death], None], clock: Callable[[], float] = time.time):
        self.on_death, self.clock = on_death, clock
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._armed: dict[str, tuple[int, int]] = {}      # bot -> (pid, pidfd)
        self._by_fd: dict[int, str] = {}
        self._ended: dict[str, int] = {}     # bot -> the pid whose end was told (a late check's pid: not again)
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="pidfd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        with self._lock:
            for bot in list(self._armed):
                self._disarm(bot)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def watched(self, bot: str) -> int | None:
        with self._lock:
            armed = self._armed.get(bot)
            return armed[0] if armed else None

    def watch(self, bot: str, pid: int | None) -> None:
        died = None
        with self._lock:
            armed = self._armed.get(bot)
            if (armed and armed[0] == pid) or (pid is not None and self._ended.get(bot) == pid):
                return
            if armed:
                self._disarm(bot)
            if pid is None or self._stopping:
                return
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._ended[bot] = pid
                died = Death(bot, self.clock(), f"pid {pid} ended before it could be watched", pid)
            except OSError as err:
                log.warning("%s: can't watch pid %d for its end (%s): its death is found by the checks", bot, pid, err)
                return
            else:
                self._armed[bot] = (pid, fd)
                self._by_fd[fd] = bot
                self._epoll.register(fd, select.EPOLLIN)
        if died:
            self.on_death(died)

    def _disarm(self, bot: str) -> None:
        pid, fd = self._armed.pop(bot)
        self._by_fd.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass
        os.close(fd)

    def _run(self) -> None:
        while not self._stopping:
            try:
                events = self._epoll.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return           # closed by stop()
            deaths = []
            with self._lock:
                for fd, _ in events:
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 64)
                        except BlockingIOError:
                            pass
                        continue
                    bot = self._by_fd.get(fd)
                    if bot is None:
                        continue
                    pid = self._armed[bot][0]
                    self._disarm(bot)
                    self._ended[bot] = pid
                    deaths.append(Death(bot, self.clock(), f"pid {pid} ended", pid))
            for death in deaths:
                self._tell(death)

    def _tell(self, death: Death) -> None:
        try:
            self.on_death(death)
        except Exception:  # a listener's bug must not stop the watch
            log.exception("%s: telling its death failed", death.bot)


class ContainerWatch:
    """The docker event stream, for the docker and compose bots: a `die` (or `oom`) is a death unless an API
    `kill`/`stop` of that container came within DELIBERATE_WINDOW before it. Reconnects when the daemon goes
    away (a death while it was away is the checks' to find)."""

    def __init__(self, bots: list["Bot"], on_death: Callable[[Death], None], client_factory: Callable = _docker_client,
                 clock: Callable[[], float] = time.time):
        self.on_death, self.client_factory, self.clock = on_death, client_factory, clock
        self.containers = {bot.container: bot.name for bot in bots if bot.container}
        self.services = {(bot.compose_service, compose_project_name(bot)): bot.name
                         for bot in bots if bot.compose_service}
        self._stream = None
        self._stopping = threading.Event()
        self._stopped_by_api: dict[str, float] = {}     # container id -> when an API kill/stop was seen
        self.events = 0                                  # events of watched containers handled
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # already closed by the daemon going away
                pass
        self._thread.join(timeout=5)

    def bot_of(self, attributes: dict) -> str | None:
        name = self.containers.get(attributes.get("name"))
        if name:
            return name
        service = attributes.get("com.docker.compose.service")
        if service is None:
            return None
        project = attributes.get("com.docker.compose.project")
        return self.services.get((service, project)) or self.services.get((service, None))

    def handle(self, event: dict) -> Death | None:
        """One event of the stream: the death it tells, if any."""
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        cid = actor.get("ID") or event.get("id") or ""
        at = event.get("timeNano", 0) / 1e9 or float(event.get("time") or self.clock())
        bot = self.bot_of(attributes)
        if bot is None:
            return None
        self.events += 1
        if action.startswith("kill") or action == "stop":
            self._stopped_by_api[cid] = at
            return None
        if action == "start":
            self._stopped_by_api.pop(cid, None)
            return None
        if action not in ("die", "oom"):
            return None
        stopped = self._stopped_by_api.get(cid)
        if stopped is not None and at - stopped <= DELIBERATE_WINDOW:
            return None                         # docker stop/kill: its operator's (or botwatch's restart)
        code = attributes.get("exitCode")
        detail = f"container {attributes.get('name', cid[:12])} " + (
            "was OOM-killed" if action == "oom" else f"exited{f' with code {code}' if code is not None else ''}")
        return Death(bot, at, detail)

    def _run(self) -> None:
        wait = RECONNECT[0]
        while not self._stopping.is_set():
            try:
                client = self.client_factory()
                self._stream = client.events(decode=True, filters={
                    "type": "container", "event": ["die", "oom", "kill", "stop", "start"]})
                self.connected.set()
                wait = RECONNECT[0]
                for event in self._stream:
                    death = self.handle(event)
                    if death is not None:
                        try:
                            self.on_death(death)
                        except Exception:  # a listener's bug must not stop the watch
                            log.exception("%s: telling its death failed", death.bot)
            except Exception as err:  # the daemon away, or the stream closed by stop()
                if self._stopping.is_set():
                    return
                log.warning("docker events: %s; a container's death is found by the checks until it is back", err)
            self.connected.clear()
            self._stopping.wait(wait)
            wait = min(wait * 2, RECONNECT[1])


class DeathWatch:
    """Both watches for one set of bots; `arm(bot, pid)` after each check of a pid-watched bot."""

    def __init__(self, bots: list["Bot"], on_death: Callable[[Death], None], client_factory: Callable = _docker_client,
                 clock: Callable[[], float] = time.time):
        self.pid_bots = {bot.name for bot in bots if DEATH_EVENTS.get(bot.runtime) == "pid"}
        self.pids = PidWatch(on_death, clock) if self.pid_bots and pidfd_supported() else None
        if self.pid_bots and self.pids is None:
            log.warning("this kernel has no pidfd (Linux >= 5.3): process deaths are found by the checks")
        containers = [bot for bot in bots if DEATH_EVENTS.get(bot.runtime) == "container"]
        self.containers = ContainerWatch(containers, on_death, client_factory, clock) if containers else None

    def start(self) -> None:
        for watch in (self.pids, self.containers):
            if watch is not None:
                watch.start()

    def stop(self) -> None:
        for watch in (self.pids, self.containers):
            if watch is not None:
                watch.stop()

    def arm(self, bot: str, pid: int | None) -> None:
        if self.pids is not None and bot in self.pid_bots:
            self.pids.watch(bot, pid)
