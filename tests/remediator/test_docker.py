"""The docker runtime against a real dockerd started by the test: restart, and OOM handling."""

import pytest

from botwatch.core.liveness import DockerProbe
from botwatch.remediator.runtimes import DockerRuntime
from tests.conftest import wait_for
from tests.remediator.conftest import alert, client_for, make_config, payload, post

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


def docker_factory(dockerd):
    import docker
    return lambda: docker.DockerClient(base_url=dockerd.host, timeout=30)


def test_a_stopped_container_is_restarted_by_the_playbook(tmp_path, dockerd, container, engine_factory):
    c = container("dockbot", ["sleep", "1000"])
    c.stop(timeout=1)
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


def test_an_oom_killed_container_gets_its_memory_limit_raised_once_up_to_the_cap(tmp_path, dockerd, container,
                                                                              engine_factory):
    mib = 1024 * 1024
    c = container("hungry", ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"],
                  mem_limit=8 * mib, memswap_limit=8 * mib)
    wait_for(lambda: (c.reload(), c.attrs["State"]["OOMKilled"])[1], timeout=90, what="the OOM kill")
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
    wait_for(lambda: (c.reload(), c.attrs["State"]["OOMKilled"] and c.status == "exited")[1], timeout=90,
             what="the second OOM kill")
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
    c.stop(timeout=1)
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
