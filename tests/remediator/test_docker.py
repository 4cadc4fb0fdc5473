"""The docker runtime against a real dockerd started by the test: restart, and OOM handling."""

import os
import signal

import pytest

from botwatch.core.liveness import DockerProbe
from botwatch.remediator.runtimes import DockerRuntime
from tests.conftest import wait_for
from tests.remediator.conftest import alert, client_for, make_config, outbox_texts, payload, post

pytestmark = pytest.mark.slow


@pytest.fixture
def container(dockerd):
    created = []

    def run(name, command, **kwargs):
        c = dockerd.client.containers.run(dockerd.image, command, name=name, detach=True, network_mode="none",
                                          **kwargs)
        created.append(c)
        return c

    yield run
    for c in created:
        c.remove(force=True)


def die(c):
    """The container's process dies by itself (SIGKILL from outside, as the kernel or a crash would): no
    Docker API call, so no `kill`/`stop` event — a failure, not an operator's stop."""
    c.reload()
    os.kill(c.attrs["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: (c.reload(), c.status == "exited")[1], timeout=30, what=f"{c.name} to exit")


def oom_killed(c, timeout: float = 90.0):
    """Wait for the kernel to OOM-kill the container. Under cgroup v2 dockerd can process the exit before
    containerd's OOM event (seen once in CI: exited, `OOMKilled` false); such an exit is not the case under
    test, so the container is started again until an exit docker records as an OOM kill."""
    seen = []

    def killed():
        c.reload()
        state = c.attrs["State"]
        if c.status != "exited":
            return False
        if state["OOMKilled"]:
            return True
        seen.append((state["ExitCode"], state.get("Error")))
        c.start()
        return False

    try:
        wait_for(killed, timeout=timeout, what=f"{c.name} to be OOM-killed")
    except AssertionError as err:
        raise AssertionError(f"{err}; status {c.status}; exits without the OOM flag (code, error): {seen}") from None


def docker_factory(dockerd):
    import docker
    return lambda: docker.DockerClient(base_url=dockerd.host, timeout=30)


def test_a_container_whose_process_died_is_restarted_by_the_playbook(tmp_path, dockerd, container, engine_factory):
    c = container("dockbot", ["sleep", "1000"])
    die(c)
    bot = {"name": "dockbot", "container": "dockbot", "data_file": str(tmp_path / "d.csv")}
    config = make_config(tmp_path, [bot])
    factory = docker_factory(dockerd)
    engine = engine_factory(config, runtime_factory=lambda b: DockerRuntime(b, factory))
    probe = DockerProbe("dockbot", factory)
    assert not probe().up and "exited" in probe().detail
    post(client_for(engine), payload(alert("dockbot")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "success", action.detail
    assert probe().up
    c.reload()
    assert c.status == "running"


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_container_stopped_through_the_docker_api_is_the_operators_never_restarted_and_told_once(
        tmp_path, dockerd, container, engine_factory, how):
    """`docker stop` / `docker kill` (and compose stop) go through the API, which logs `kill`/`stop` before the
    `die`: that is a person's decision. The playbook is held, the hold is recorded as operator_stop and told
    once, and a later copy of the alert is held too; once the operator starts it again the hold ends."""
    c = container("opbot", ["sleep", "1000"])
    getattr(c, how)(**({"timeout": 1} if how == "stop" else {}))
    wait_for(lambda: (c.reload(), c.status == "exited")[1], timeout=30, what="opbot to exit")
    bot = {"name": "opbot", "container": "opbot", "data_file": str(tmp_path / "o.csv")}
    factory = docker_factory(dockerd)
    engine = engine_factory(make_config(tmp_path, [bot]), runtime_factory=lambda b: DockerRuntime(b, factory))
    client = client_for(engine)
    post(client, payload(alert("opbot")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions(bot="opbot")[-1:]
    assert action.outcome == "held", action.detail
    assert f"docker {how}" in action.detail and "stopped by its operator" in action.detail
    c.reload()
    assert c.status == "exited"                                   # not restarted
    [pause] = engine.pauses.active()
    assert (pause.reason, pause.target) == ("operator_stop", "opbot")
    notices = wait_for(lambda: [n for n in outbox_texts(tmp_path) if "opbot" in n], what="the notice")
    assert len(notices) == 1 and "stopped by its operator" in notices[0] and "botwatch resume opbot" in notices[0]
    post(client, payload(alert("opbot", starts_at="2026-12-02T10:00:00Z")))     # a new incident: still held
    engine.runner.dispatch_due(inline=True)
    assert engine.ledger.actions(bot="opbot")[0].outcome == "held"
    c.reload()
    assert c.status == "exited"
    assert len([n for n in outbox_texts(tmp_path) if "opbot" in n]) == 1
    c.start()                                                     # the operator starts it again
    engine.stops.look("opbot")
    assert engine.pauses.active() == []


def test_a_compose_service_stopped_through_the_api_is_deliberate_and_one_that_died_is_not(tmp_path, dockerd, container):
    """`docker compose stop` stops the service's containers through the API: the same `kill`/`stop` events."""
    from botwatch.core.config import config_from_mapping
    from botwatch.remediator.intent.stops import deliberate_stop
    from botwatch.remediator.runtimes import ComposeRuntime
    labels = {"com.docker.compose.service": "svc", "com.docker.compose.project": "ops"}
    c = container("ops-svc-1", ["sleep", "1000"], labels=labels)
    [bot] = config_from_mapping({"bots": [{"name": "svc", "compose_service": "svc", "compose_project": "ops",
                                           "data_file": str(tmp_path / "s.csv")}]}).bots
    runtime = ComposeRuntime(bot, docker_factory(dockerd))
    assert deliberate_stop(runtime) is None                       # running
    die(c)
    assert deliberate_stop(runtime) is None                       # died by itself: a failure
    c.start()
    c.stop(timeout=1)
    wait_for(lambda: (c.reload(), c.status == "exited")[1], timeout=30, what="ops-svc-1 to exit")
    assert "compose stop" in deliberate_stop(runtime)


def test_an_oom_killed_container_gets_its_memory_limit_raised_once_up_to_the_cap(tmp_path, dockerd, container,
                                                                              engine_factory):
    mib = 1024 * 1024
    c = container("hungry", ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"],
                  mem_limit=8 * mib, memswap_limit=8 * mib)
    oom_killed(c)
    bot = {"name": "hungry", "container": "hungry", "data_file": str(tmp_path / "h.csv"), "memory_limit_cap": "12m"}
    factory = docker_factory(dockerd)
    engine = engine_factory(make_config(tmp_path, [bot], verify_after="1s"),
                            runtime_factory=lambda b: DockerRuntime(b, factory))
    client = client_for(engine)
    post(client, payload(alert("hungry")))
    engine.runner.dispatch_due(inline=True)
    c.reload()
    assert c.attrs["HostConfig"]["Memory"] == 12 * mib            # doubled, then held to the cap
    action = engine.ledger.actions()[-1]
    assert "memory limit raised from 8388608 to 12582912" in action.detail
    assert engine.ledger.bot_state("hungry").memory_raised
    # it still eats everything: the next restart leaves the limit alone
    oom_killed(c)
    engine.ledger.update_bot("hungry", last_restart_at=0)
    engine.runner.dispatch_due(inline=True)
    c.reload()
    assert c.attrs["HostConfig"]["Memory"] == 12 * mib


def test_the_exporter_probe_sees_a_container_die(dockerd, container):
    c = container("mortal", ["sleep", "1000"])
    probe = DockerProbe("mortal", docker_factory(dockerd))
    assert probe().up
    c.kill()
    wait_for(lambda: not probe().up, timeout=10, what="down")
    assert not DockerProbe("nonexistent", docker_factory(dockerd))().up


def test_a_compose_service_is_found_by_its_labels_and_restarted(tmp_path, dockerd, container, engine_factory):
    from botwatch.remediator.runtimes import ComposeRuntime
    labels = {"com.docker.compose.service": "mm-bot", "com.docker.compose.project": "fleet"}
    c = container("fleet-mm-bot-1", ["sleep", "1000"], labels=labels)
    container("other-mm-bot-1", ["sleep", "1000"], labels={**labels, "com.docker.compose.project": "other"})
    die(c)
    bot = {"name": "mm-bot", "compose_service": "mm-bot", "compose_project": "fleet", "data_file": str(tmp_path / "m.csv")}
    factory = docker_factory(dockerd)
    engine = engine_factory(make_config(tmp_path, [bot], verify_after="1s"),
                            runtime_factory=lambda b: ComposeRuntime(b, factory))
    post(client_for(engine), payload(alert("mm-bot")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "success", action.detail
    c.reload()
    assert c.status == "running"


def test_a_docker_daemon_that_cannot_be_asked_is_unknown_never_down_and_nothing_is_restarted(
        tmp_path, dockerd, container, engine_factory):
    """A docker hiccup (the daemon's socket unreachable) is "unknown": it never counts towards
    TradingBotDown, tradingbot_up has no sample, botwatch_exporter_check_unknown says it, and a restart that
    arrives meanwhile does not touch the container. When the daemon answers again, a real death counts."""
    import docker
    from botwatch.core.checks import BotCheck
    from botwatch.exporter.collector import bot_families

    c = container("blindbot", ["sleep", "1000"])
    proxy = SocketProxy(tmp_path / "docker.sock", dockerd.host.removeprefix("unix://"))
    factory = lambda: docker.DockerClient(base_url=f"unix://{proxy.path}", timeout=5)   # noqa: E731
    config = make_config(tmp_path, [{"name": "blindbot", "container": "blindbot", "data_file": str(tmp_path / "b.csv")}])
    check = BotCheck(config.bots[0], docker_client=factory)
    assert check.run().up
    proxy.cut()                                                                # the daemon away
    for _ in range(3):
        status = check.run()
    assert (status.up, status.errors, status.down_checks) == (False, ("liveness",), 0)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in bot_families(config.bots[0], status) for s in family.samples}
    assert not [key for key in samples if key[0] in ("tradingbot_up", "tradingbot_process_up")]
    assert samples[("botwatch_exporter_check_unknown", (("bot", "blindbot"), ("check", "liveness"),
                                                        ("host", "local")))] == 1
    assert samples[("tradingbot_down_checks", (("bot", "blindbot"), ("host", "local")))] == 0

    started = dockerd.client.containers.get("blindbot").attrs["State"]["StartedAt"]
    engine = engine_factory(config, runtime_factory=lambda b: DockerRuntime(b, factory))
    post(client_for(engine), payload(alert("blindbot")))
    engine.runner.dispatch_due(inline=True)
    [action] = engine.ledger.actions()
    assert action.outcome == "skipped" and "could not be asked" in action.detail, action.detail
    assert dockerd.client.containers.get("blindbot").attrs["State"]["StartedAt"] == started, "not restarted"

    proxy.serve()                                                              # back; now the bot really dies
    c.kill()
    wait_for(lambda: check.run().down_checks >= 2, what="two checks that find it down")
    proxy.cut()


class SocketProxy:
    """A unix socket in front of dockerd's that can be cut (every connection closed, the socket gone) and
    served again: a docker daemon that hiccups, as the docker SDK sees it."""

    def __init__(self, path, target: str):
        self.path, self.target = path, target
        self.conns: list = []
        self.listener = None
        self.serve()

    def serve(self) -> None:
        import socket
        import threading
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        self.listener.close()
        self.path.unlink(missing_ok=True)
        for conn in self.conns:
            conn.close()
        self.conns.clear()

    def _accept(self, listener) -> None:
        import socket
        import threading
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return                          # cut
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(2)
                except OSError:
                    pass


def test_a_container_that_dies_is_restarted_by_the_fast_path_once_and_one_stopped_by_the_api_is_not(
        tmp_path, dockerd, container, engine_factory):
    """docker's event stream tells the exporter's fast path of the `die` at once; the remediator restarts the
    container through its job path (no alert, no second check). `docker kill` is the operator's: no job."""
    from botwatch.core.checks import BotCheck
    from botwatch.exporter.fastpath import FastPath
    from botwatch.exporter.monitor import Monitor
    c = container("fastbot", ["sleep", "1000"])
    bot = {"name": "fastbot", "container": "fastbot", "data_file": str(tmp_path / "f.csv")}
    config = make_config(tmp_path, [bot])
    factory = docker_factory(dockerd)
    engine = engine_factory(config, runtime_factory=lambda b: DockerRuntime(b, factory))
    engine.start()
    monitor = Monitor(config, check_factory=lambda b: BotCheck(b, docker_client=factory))
    fast = FastPath(monitor, lambda death: engine.intake.death(death.bot, death.at, death.detail), factory)
    monitor.run_once()
    monitor.start()
    fast.start()
    try:
        wait_for(fast.deaths.containers.connected.is_set, timeout=30, what="docker's event stream")
        c.reload()
        first = c.attrs["State"]["StartedAt"]
        os.kill(c.attrs["State"]["Pid"], signal.SIGKILL)      # as die() does, without waiting to see it exited:
        wait_for(lambda: (c.reload(), c.status == "running" and c.attrs["State"]["StartedAt"] != first)[1],
                 timeout=10, what="fastbot running again, started by the fast path")
        restarts = lambda: [a.outcome for a in engine.ledger.actions(bot="fastbot") if a.playbook == "restart"]  # noqa: E731
        wait_for(lambda: restarts() == ["success"], timeout=30, what="one restart, verified")
        assert fast.told == {"scheduled": 1}
        seen = fast.deaths.containers.events
        c.kill()                                                   # the operator's `docker kill`
        wait_for(lambda: fast.deaths.containers.events >= seen + 2, timeout=30, what="its kill and die events")
        wait_for(lambda: (c.reload(), c.status == "exited")[1], timeout=30, what="fastbot exited")
        assert fast.told == {"scheduled": 1}
        assert restarts() == ["success"]
    finally:
        fast.stop()
        monitor.stop()
