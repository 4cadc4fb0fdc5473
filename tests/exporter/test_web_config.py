"""`--web-config`: TLS and basic auth on botwatch's listeners, as Prometheus itself reads them (exporter-toolkit's
web.yml), checked with real Prometheus 2.42 scraping, and a start refused for a file that is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse

import pytest
import requests
import yaml

from botwatch.remediator.web.login import hash_password
from botwatch.up.certs import CA
from tests.conftest import BOTWATCH, ROOT, free_port, http_get, wait_for, write_config

PASSWORD = "correct horse battery staple"
ONE_BOT = lambda folder: [{"name": "a", "health_endpoint": "http://127.0.0.1:9/health",   # noqa: E731
                           "data_file": str(folder / "a.csv")}]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def users():
    return {"prometheus": hash_password(PASSWORD, rounds=10)}


@pytest.fixture
def service(tmp_path):
    """start(argv, web) runs a botwatch service with --web-config on a free port; returns (base URL, process).
    Every one started is stopped at the end."""
    processes = []

    def start(argv: list[str], web: dict, ca: CA | None = None) -> tuple[str, subprocess.Popen]:
        port = free_port()
        path = tmp_path / f"web-{port}.yml"
        path.write_text(yaml.safe_dump(web))
        process = subprocess.Popen(BOTWATCH + argv + ["--listen", f"127.0.0.1:{port}", "--web-config", str(path)],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{port}.log", "wb"),
                                   env={**os.environ, "BOTWATCH_DATA_DIR": str(tmp_path / f"data-{port}")})
        processes.append(process)
        scheme = "https" if "tls_server_config" in web else "http"
        url = f"{scheme}://127.0.0.1:{port}"
        verify = str(ca.cert) if ca else True
        wait_for(lambda: process.poll() is None and requests.get(url + "/-/healthy", verify=verify, timeout=2).ok,
                 timeout=30, what=f"{argv[0]} healthy over {scheme}")
        return url, process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def tls(ca: CA, name: str = "server") -> dict:
    issued = ca.issue(name, ["127.0.0.1"])
    return {"cert_file": str(issued.cert), "key_file": str(issued.key)}


def test_prometheus_with_the_password_scrapes_over_tls_without_it_gets_401(tmp_path, paperbots, service, ca, users,
                                                                           prometheus):
    bot = paperbots("tls-bot")
    config = write_config(tmp_path / "bots.json", [bot.bot_config(check_interval=1)])
    url, _ = service(["exporter", "--config", str(config), "--no-checkpoints"],
                     {"tls_server_config": tls(ca), "basic_auth_users": users}, ca)
    target = url.removeprefix("https://")
    (tmp_path / "password").write_text(PASSWORD)
    job = {"scheme": "https", "tls_config": {"ca_file": str(ca.cert)}, "static_configs": [{"targets": [target]}]}
    doc = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "with-password", **job,
         "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")}},
        {"job_name": "wrong-password", **job, "basic_auth": {"username": "prometheus", "password": "guess"}},
        {"job_name": "no-password", **job},
        {"job_name": "no-ca", "scheme": "https", "static_configs": [{"targets": [target]}],
         "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")}},
        {"job_name": "plain-http", "static_configs": [{"targets": [target]}],
         "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")}}]}
    prom = prometheus(yaml.safe_dump(doc))

    def targets() -> dict[str, dict]:
        found = json.loads(http_get(prom + "/api/v1/targets"))["data"]["activeTargets"]
        return {t["labels"]["job"]: t for t in found if t["health"] != "unknown"}

    wait_for(lambda: len(targets()) == 5, timeout=30, what="every job scraped once")
    seen = targets()
    assert seen["with-password"]["health"] == "up", seen["with-password"]
    for job_name in ("wrong-password", "no-password"):
        assert seen[job_name]["health"] == "down" and "401" in seen[job_name]["lastError"], seen[job_name]
    assert seen["no-ca"]["health"] == "down" and "certificate" in seen["no-ca"]["lastError"], seen["no-ca"]
    assert seen["plain-http"]["health"] == "down", seen["plain-http"]
    query = prom + "/api/v1/query?query=" + urllib.parse.quote('tradingbot_up{job="with-password"}')
    wait_for(lambda: json.loads(http_get(query))["data"]["result"], what="the bot's series through TLS")
    only = prom + "/api/v1/query?query=" + urllib.parse.quote('count by (job) (tradingbot_up)')
    assert [r["metric"]["job"] for r in json.loads(http_get(only))["data"]["result"]] == ["with-password"]


def test_a_client_certificate_is_required_when_the_web_config_says_so(tmp_path, ca):
    config = write_config(tmp_path / "bots.json", ONE_BOT(tmp_path))
    clients = CA.create(tmp_path / "clients", "clients CA")
    # every path needs the certificate here, /-/healthy too: started, then asked with one
    port = free_port()
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {**tls(ca), "client_ca_file": str(clients.cert),
                                                         "client_auth_type": "RequireAndVerifyClientCert"}}))
    process = subprocess.Popen(BOTWATCH + ["exporter", "--config", str(config), "--no-checkpoints", "--listen",
                                           f"127.0.0.1:{port}", "--web-config", str(web)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "wb"))
    try:
        client = clients.issue("prometheus", client=True)
        stranger = CA.create(tmp_path / "stranger", "another CA").issue("prometheus", client=True)
        url = f"https://127.0.0.1:{port}/metrics"
        wait_for(lambda: requests.get(url, verify=str(ca.cert), cert=(str(client.cert), str(client.key)),
                                      timeout=2).ok, timeout=30, what="metrics with a client certificate")
        for cert in (None, (str(stranger.cert), str(stranger.key))):
            with pytest.raises(requests.exceptions.SSLError):  # TLS 1.3: the refusal can come with the first read
                requests.get(url, verify=str(ca.cert), cert=cert, timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_open_paths_answer_without_basic_auth_and_the_rest_asks(tmp_path, service, users):
    config = write_config(tmp_path / "bots.json", ONE_BOT(tmp_path))
    url, _ = service(["exporter", "--config", str(config), "--no-checkpoints"],
                     {"basic_auth_users": users, "open_paths": ["/metrics"]})
    assert requests.get(url + "/metrics", timeout=5).status_code == 200
    landing = requests.get(url + "/", timeout=5)
    assert landing.status_code == 401 and landing.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(url + "/", auth=("prometheus", PASSWORD), timeout=5).status_code == 200
    assert requests.get(url + "/", auth=("Prometheus", PASSWORD), timeout=5).status_code == 401
    assert requests.get(url + "/", auth=("prometheus", PASSWORD + "x"), timeout=5).status_code == 401


def test_the_remediator_guards_metrics_and_sd_and_keeps_its_own_credentials(tmp_path, service, ca, users):
    config = write_config(tmp_path / "bots.json", ONE_BOT(tmp_path), status_page={"users": [
        {"name": "ana", "password_hash": hash_password("ana's password", rounds=4)}]})
    token = tmp_path / "token"
    token.write_text("webhook-secret\n")
    url, process = service(["remediator", "--config", str(config), "--token-file", str(token)],
                           {"tls_server_config": tls(ca), "basic_auth_users": users}, ca)
    get = lambda path, **kw: requests.get(url + path, verify=str(ca.cert), timeout=5, allow_redirects=False, **kw)
    for path in ("/metrics", "/sd"):
        assert get(path).status_code == 401
        assert get(path, auth=("prometheus", PASSWORD)).status_code == 200
    assert get("/-/healthy").status_code == 200
    assert get("/").status_code == 303 and "/login" in get("/").headers["Location"]   # its own login
    alerts = {"version": "4", "status": "firing", "receiver": "remediator", "alerts": []}
    post = lambda **kw: requests.post(url + "/alerts", json=alerts, verify=str(ca.cert), timeout=5, **kw)
    assert post().status_code == 401
    assert post(auth=("prometheus", PASSWORD)).status_code == 401            # basic auth opens no webhook
    assert post(headers={"Authorization": "Bearer webhook-secret"}).status_code == 200
    # the image's HEALTHCHECK finds TLS in the service's own --web-config
    check = subprocess.run(BOTWATCH + ["healthcheck", "--pid", str(process.pid)], cwd=ROOT, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("web, named", [
    ({"tls_server_config": {"cert_file": "/nonexistent.crt", "key_file": "/nonexistent.key"}}, "cert_file: no file"),
    ({"basic_auth_users": {"prometheus": "plain-text"}}, "basic_auth_users.prometheus: not a bcrypt hash"),
    ({"tls_server_config": {"cipher_suites": ["TLS_AES_128_GCM_SHA256"]}}, "cipher_suites is not supported"),
    ({"tls_config": {}}, "unknown key(s) tls_config"),
    ({"tls_server_config": "SERVER", "basic_auth_users": {}}, "tls_server_config must be a mapping"),
    ({"open_paths": "metrics"}, "open_paths must be a list of paths"),
    ("SWAPPED", "cert_file and key_file don't load as a pair"),
    ("ANY_CLIENT", "client_auth_type 'RequireAnyClientCert'"),
])
def test_a_wrong_web_config_stops_the_start_naming_what_to_fix(tmp_path, ca, web, named):
    if web == "SWAPPED":
        one, other = ca.issue("one", ["127.0.0.1"]), ca.issue("other", ["127.0.0.1"])
        web = {"tls_server_config": {"cert_file": str(one.cert), "key_file": str(other.key)}}
    elif web == "ANY_CLIENT":
        web = {"tls_server_config": {**tls(ca), "client_auth_type": "RequireAnyClientCert"}}
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(web))
    config = write_config(tmp_path / "bots.json", ONE_BOT(tmp_path))
    port = free_port()
    result = subprocess.run(BOTWATCH + ["exporter", "--config", str(config), "--no-checkpoints", "--listen",
                                        f"127.0.0.1:{port}", "--web-config", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and f"--web-config {path}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
