"""The agent's line to the central remediator: outbound HTTP with the bearer token, to whichever replica
answers (they share one ledger, so any of them will do)."""

from __future__ import annotations

import logging
import re

import requests

log = logging.getLogger(__name__)


def system_cas() -> str | bool:
    """The system's CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt), where an operator's own CA is
    added with update-ca-certificates; else requests' own (certifi)."""
    import os
    import ssl
    paths = ssl.get_default_verify_paths()
    return next((p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)), True)


class Unreachable(Exception):
    """No remediator answered (or each answered 5xx): nothing was recorded; try again later."""


class Refused(Exception):
    """A remediator refused the request for good (4xx): a lost claim, a job that no longer exists."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class RemediatorClient:
    def __init__(self, urls: list[str], token: str, timeout: float = 5.0, ca_file: str | None = None):
        if not urls:
            raise ValueError("no remediator URL")
        self.urls = [url.rstrip("/") for url in urls]
        self.timeout = timeout
        self.session = requests.Session()
        # given with each call: requests lets $REQUESTS_CA_BUNDLE override a session's verify, not a call's
        self.verify = ca_file or system_cas()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._current = 0         # the replica that answered last: asked first next time

    def post(self, path: str, body: dict):
        """The JSON answer of the first replica that gives a 2xx; Refused for a 4xx, Unreachable else."""
        problems = []
        for i in range(len(self.urls)):
            index = (self._current + i) % len(self.urls)
            url = self.urls[index] + path
            try:
                response = self.session.post(url, json=body, timeout=self.timeout, verify=self.verify)
            except requests.RequestException as err:
                problems.append(f"{self.urls[index]}: {_why(err)}")
                continue
            if response.status_code >= 500:
                problems.append(f"{self.urls[index]}: HTTP {response.status_code}")
                continue
            self._current = index
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if response.status_code >= 400:
                raise Refused(response.status_code, str(answer.get("error", response.text))[:300]
                              if isinstance(answer, dict) else response.text[:300])
            return answer
        raise Unreachable("; ".join(problems))


def _why(err: requests.RequestException) -> str:
    """A failed call in a few words: a certificate not trusted is said as such (it won't mend by itself)."""
    if isinstance(err, requests.exceptions.SSLError):
        found = re.search(r"\[SSL: [A-Z_]+\] ([^(']+)", str(err))
        return f"TLS: {found.group(1).strip() if found else 'handshake failed'} (--ca-file?)"
    return type(err).__name__
