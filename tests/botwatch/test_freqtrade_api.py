"""The Freqtrade API client against a local server: credentials from the file only, bounded answers."""

import base64

import pytest

from botwatch.core import freqtrade_api
from botwatch.core.freqtrade_api import AuthFileError, FreqtradeAPI, read_auth
from botwatch.up.standins.localhttp import JSONHandler, LocalServer


@pytest.fixture
def api_server():
    seen = []

    class Handler(JSONHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            if self.path.startswith("/api/v1/huge"):
                return self.send_json(200, b"[" + b"1," * (freqtrade_api.MAX_BODY // 2) + b"1]")
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"bw:pw").decode():
                return self.send_json(401, {"detail": "Unauthorized"})
            self.send_json(200, {"last_process_ts": 1795655081, "state": "running", "exchange": "binance"})

    server = LocalServer(Handler)
    yield server.url, seen
    server.close()


def test_credentials_come_from_the_file_and_a_wrong_file_sends_none(api_server, tmp_path):
    url, seen = api_server
    (tmp_path / "auth").write_text("bw:pw\n")
    assert FreqtradeAPI(url, tmp_path / "auth").get("health")["last_process_ts"] == 1795655081
    (tmp_path / "auth").write_text("no colon here\n")
    assert FreqtradeAPI(url, tmp_path / "auth").get("health") is None     # 401
    assert seen[-1] is None


def test_an_answer_over_the_cap_is_refused(api_server, tmp_path):
    url, _ = api_server
    assert FreqtradeAPI(url).get("huge") is None


@pytest.mark.parametrize("text", ["", "user", ":pw", "a:b\nc:d"])
def test_a_malformed_auth_file_says_what_to_fix(tmp_path, text):
    (tmp_path / "auth").write_text(text)
    with pytest.raises(AuthFileError, match="user:password"):
        read_auth(tmp_path / "auth")
