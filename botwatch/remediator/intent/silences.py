"""Alertmanager silences (API v2), as botwatch makes them for pauses and maintenance windows.

One peer of a cluster is enough (gossip copies a silence to the others); when one does not answer the next
in `remediation.alertmanager_urls` is tried. Every silence botwatch makes says `createdBy: botwatch`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import requests

log = logging.getLogger(__name__)

CREATED_BY = "botwatch"
TIMEOUT = 5.0
FOREVER = 365 * 86400.0    # a pause "until resumed" is a silence this long (Alertmanager needs an end)


class SilenceError(Exception):
    """No Alertmanager took the call; the message says what each answered."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Silences:
    def __init__(self, urls: list[str], session: requests.Session | None = None, timeout: float = TIMEOUT):
        self.urls = [url.rstrip("/") for url in urls]
        self.session = session or requests.Session()
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs):
        problems, missing = [], 0
        for url in self.urls:
            try:
                response = self.session.request(method, f"{url}/api/v2/{path}", timeout=self.timeout, **kwargs)
            except requests.RequestException as err:
                problems.append(f"{url}: {type(err).__name__}")
                continue
            if response.status_code in (200, 201):
                return response.json() if response.content else None
            if 400 <= response.status_code < 500 and response.status_code != 404:
                raise SilenceError(f"{url}: HTTP {response.status_code}: {response.text.strip()[:200]}")
            if response.status_code == 404 and method == "GET" and path.startswith("silence/"):
                missing += 1            # not gossiped to this peer yet, or gone: ask the next
                continue
            problems.append(f"{url}: HTTP {response.status_code}: {response.text.strip()[:200]}")
        if missing and not problems:
            return None                 # no peer knows it
        raise SilenceError("; ".join(problems) or "no Alertmanager configured")

    def create(self, matchers: list[dict], starts: float, ends: float, comment: str) -> str:
        """A new silence; its id."""
        body = {"matchers": matchers, "startsAt": iso(starts), "endsAt": iso(ends), "createdBy": CREATED_BY,
                "comment": comment}
        answer = self._call("POST", "silences", json=body)
        return answer["silenceID"]

    def expire(self, silence_id: str) -> None:
        """End a silence now (a silence already expired or gone is fine)."""
        try:
            self._call("DELETE", f"silence/{silence_id}")
        except SilenceError as err:
            if "already expired" in str(err):
                return
            raise

    def state(self, silence_id: str) -> str | None:
        """active | pending | expired, or None when no peer knows it (yet: gossip takes a moment)."""
        answer = self._call("GET", f"silence/{silence_id}")
        return (answer or {}).get("status", {}).get("state")

    def firing(self, labels: dict[str, str]) -> bool:
        """Whether Alertmanager holds an unresolved alert with these labels (silenced ones included)."""
        filters = [f'{name}="{value}"' for name, value in labels.items()]
        answer = self._call("GET", "alerts", params={"active": "true", "silenced": "true", "inhibited": "true",
                                                     "unprocessed": "true", "filter": filters})
        return bool(answer)

    def find(self, comment_mark: str) -> dict | None:
        """An active or pending silence by botwatch whose comment contains `comment_mark`."""
        for silence in self._call("GET", "silences") or []:
            if (silence.get("createdBy") == CREATED_BY and comment_mark in (silence.get("comment") or "")
                    and silence.get("status", {}).get("state") in ("active", "pending")):
                return silence
        return None
