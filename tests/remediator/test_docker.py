"""The docker runtime against a real dockerd started by the test: restart, and OOM handling."""

import pytest

from botwatch.core.liveness import DockerProbe
from remediator.runtimes import DockerRuntime
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
    wait_for(lambda: (c.reload(), c.attrs["State"]["OOMKilled"])[1], timeout=30, what="the OOM kill")
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
    wait_for(lambda: (c.reload(), c.attrs["State"]["OOMKilled"] and c.status == "exited")[1], timeout=30,
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
    from remediator.runtimes import ComposeRuntime
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
