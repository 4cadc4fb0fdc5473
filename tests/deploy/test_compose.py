"""docker-compose.yml as Debian's docker-compose reads it: valid, pinned, secrets as files, the socket only where needed."""

import os
import shutil
import subprocess

import pytest
import yaml

from botwatch.core.config import config_from_mapping, parse_text
from tests.conftest import ROOT, require_tool

SECRETS = ("webhook_token", "telegram_token", "grafana_admin_password", "minio_user", "minio_password")


@pytest.fixture
def compose(tmp_path):
    """The compose file as `docker-compose config` resolves it (secrets present, as a user would have them)."""
    binary = require_tool("docker-compose")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / "secrets").mkdir()
    for name in SECRETS:
        (tmp_path / "secrets" / name).write_text("x\n")
    result = subprocess.run([binary, "--profile", "s3", "--profile", "grafana", "config"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "DOCKER_GID": "999"})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_all_services_are_there(compose):
    assert set(compose["services"]) == {"exporter", "remediator", "alertmanager-config", "alertmanager",
                                        "prometheus", "grafana", "minio"}


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
    assert compose["services"]["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert compose["services"]["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"


def test_the_docker_socket_only_where_a_service_needs_it(compose):
    with_socket = {name for name, service in compose["services"].items()
                   if any("docker.sock" in str(v) for v in service.get("volumes", []))}
    assert with_socket == {"exporter", "remediator"}
    exporter_socket = [v for v in compose["services"]["exporter"]["volumes"] if "docker.sock" in str(v)][0]
    assert (exporter_socket.get("read_only") if isinstance(exporter_socket, dict) else exporter_socket.endswith(":ro"))


def test_secrets_are_files_and_ports_stay_on_loopback(compose):
    assert all("file" in secret for secret in compose["secrets"].values())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert "webhook_token" in compose["services"]["remediator"]["secrets"][0]["source"]


def test_the_compose_prometheus_config_and_mounts_are_valid():
    result = subprocess.run([require_tool("promtool"), "check", "config", "--syntax-only",
                             str(ROOT / "prometheus" / "compose" / "prometheus.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = doc["services"]["prometheus"]["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in mounts
    for mount in mounts + doc["services"]["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"compose mounts {source}, which is not in the repo"


def test_the_alertmanager_config_renders_with_the_compose_paths(tmp_path):
    (tmp_path / "tg").write_text("123:abc\n")
    (tmp_path / "wh").write_text("s3cret\n")
    config = config_from_mapping(parse_text(f"telegram: {{bot_token_file: {tmp_path / 'tg'}, chat_id: 5}}\n"
                                            "bots: [{name: a, container: a, data_file: /data/a.csv}]\n"), base=tmp_path)
    from botwatch.up.alertmanager import render
    text = render(config, "http://remediator:9818", tmp_path / "wh")
    path = tmp_path / "am.yml"
    path.write_text(text)
    result = subprocess.run([require_tool("amtool"), "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "http://remediator:9818/alerts" in text


def test_without_the_docker_gid_compose_refuses_naming_it(tmp_path):
    """The socket is root:docker 0660 and the image's user is 10001: without the group it would be refused,
    and every container bot read as unknown. Compose says what to set instead of starting that."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_GID"}
    result = subprocess.run([require_tool("docker-compose"), "config"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode != 0 and "DOCKER_GID" in result.stderr and "stat -c %g" in result.stderr
