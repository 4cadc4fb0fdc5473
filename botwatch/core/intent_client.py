"""The remediator's operator API, as its clients call it: `botwatch pause|resume|pauses|stop` and the
exporter, which publishes `tradingbot_paused` from what `GET /pauses` answers (the ledger: one source of
truth for every pause, maintenance window and deliberate stop)."""

from __future__ import annotations

from pathlib import Path

import requests

TIMEOUT = 10.0


class IntentError(Exception):
    """The remediator refused (the message is its own), or could not be reached."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage            # a mistake in what was asked (HTTP 400): exit 2


def read_token_file(path: str | Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as err:
        raise IntentError(f"--token-file {path}: {err.strerror}", usage=True) from None
    if not token:
        raise IntentError(f"--token-file {path} is empty", usage=True)
    return token


class IntentClient:
    def __init__(self, url: str, token: str, session: requests.Session | None = None, timeout: float = TIMEOUT):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = session or requests.Session()
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self.session.request(method, f"{self.url}{path}", json=body, headers=self.headers,
                                            timeout=self.timeout)
        except requests.RequestException as err:
            raise IntentError(f"the remediator at {self.url} can't be reached: {type(err).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200:
            raise IntentError(answer.get("error") or f"HTTP {response.status_code}", usage=response.status_code == 400)
        return answer

    def pause(self, bots: list[str], host: str | None, everything: bool, duration: str | None, until: str | None,
              reason: str, who: str) -> list[dict]:
        body = {"bots": bots, "host": host, "all": everything, "for": duration, "until": until, "reason": reason,
                "who": who}
        return self._call("POST", "/pause", body)["pauses"]

    def resume(self, bots: list[str], host: str | None, everything: bool, who: str) -> list[dict]:
        return self._call("POST", "/resume", {"bots": bots, "host": host, "all": everything, "who": who})["ended"]

    def pauses(self) -> list[dict]:
        return self._call("GET", "/pauses")["pauses"]

    def death(self, bot: str, at: float, detail: str, pid: int | None = None) -> str:
        """The fast path: the bot died at `at`; what the remediator did about it (scheduled, duplicate, …)."""
        return self._call("POST", "/death", {"bot": bot, "at": at, "detail": detail, "pid": pid})["outcome"]

    def stop(self, bots: list[str], who: str) -> list[str]:
        return self._call("POST", "/stop", {"bots": bots, "who": who})["bots"]
