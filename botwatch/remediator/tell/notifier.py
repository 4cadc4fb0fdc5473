"""Telegram delivery through the Bot API's sendMessage (HTML), with retries; an outbox file without a token.

Used for the remediator's notices and the morning report. A failure is logged and counted, never silent,
and never raised into a playbook.
"""

from __future__ import annotations

import html
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from botwatch.core.config import Telegram

log = logging.getLogger(__name__)

LIMIT = 4096
ATTEMPTS = 4
MAX_WAIT = 60.0       # seconds between two attempts, at most, whatever retry_after says


def escape(text) -> str:
    """Text safe inside Telegram's HTML parse mode."""
    return html.escape(str(text), quote=False)


def split_message(text: str, limit: int = LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at line boundaries (a line longer than that is cut)."""
    pieces, current = [], ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current or not pieces:
        pieces.append(current)
    return pieces


class Notifier:
    """Sends HTML messages to every configured chat; counts outcomes in `counts`."""

    def __init__(self, telegram: Telegram, outbox: Path | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 10.0,
                 on_outcome: Callable[[str], None] = lambda outcome: None):
        self.api_url = telegram.api_url.rstrip("/")
        self.chat_ids = telegram.chat_ids
        self.token = self._read_token(telegram)
        self.outbox = outbox
        self.session = session or requests.Session()
        self.sleep = sleep
        self.timeout = timeout
        self.counts = {"sent": 0, "failed": 0, "outbox": 0}
        self.on_outcome = on_outcome   # e.g. a metrics counter: told of every sent, failed or outboxed message
        self._lock = threading.Lock()

    @staticmethod
    def _read_token(telegram: Telegram) -> str | None:
        if not telegram.bot_token_file:
            return None
        try:
            return telegram.bot_token_file.read_text().strip() or None
        except OSError as err:
            log.error("telegram.bot_token_file %s: %s; notices go to the outbox", telegram.bot_token_file, err)
            return None

    @property
    def configured(self) -> bool:
        return bool(self.token and self.chat_ids)

    def send(self, text: str) -> bool:
        """Send an HTML message (split below 4096 characters) to each chat; True if every piece arrived."""
        if not self.configured:
            self._to_outbox("sendMessage", {"text": text, "parse_mode": "HTML"})
            return True
        ok = True
        for chat in self.chat_ids:
            for piece in split_message(text):
                ok &= self._call("sendMessage", chat, json={"chat_id": chat, "text": piece, "parse_mode": "HTML",
                                                            "disable_web_page_preview": True})
        return ok

    def send_photo(self, png: bytes, caption: str = "", filename: str = "chart.png") -> bool:
        if not self.configured:
            self._to_outbox("sendPhoto", {"caption": caption, "bytes": len(png)})
            return True
        ok = True
        for chat in self.chat_ids:
            ok &= self._call("sendPhoto", chat, data={"chat_id": str(chat), "caption": caption[:1024],
                                                      "parse_mode": "HTML"},
                             files={"photo": (filename, png, "image/png")})
        return ok

    def _call(self, method: str, chat, **kwargs) -> bool:
        url = f"{self.api_url}/bot{self.token}/{method}"
        delay = 1.0
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self.session.post(url, timeout=self.timeout, **kwargs)
                answer = read_answer(response.status_code, response.content)
            except requests.RequestException as err:
                reason, retry_after = type(err).__name__, None
            else:
                if answer.ok:
                    self._count("sent")
                    return True
                reason, retry_after = answer.reason, answer.retry_after
                if not answer.retryable:
                    break   # a 4xx other than 429 will not get better by asking again
            if attempt < ATTEMPTS:
                self.sleep(retry_after if retry_after is not None else min(delay, MAX_WAIT))
                delay *= 2
        log.error("telegram %s to chat %s failed: %s", method, chat, reason)
        self._count("failed")
        return False

    def _to_outbox(self, method: str, payload: dict) -> None:
        self._count("outbox")
        if self.outbox is None:
            log.info("telegram not configured; %s not sent: %s", method, str(payload)[:200])
            return
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.outbox, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), "method": method, **payload}) + "\n")

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1
        self.on_outcome(outcome)


@dataclass(frozen=True)
class Answer:
    ok: bool
    reason: str
    retry_after: float | None      # seconds, in [0, MAX_WAIT], when the API said how long to wait
    retryable: bool


def read_answer(status: int, body: bytes) -> Answer:
    """What a Bot API answer says: sent only on HTTP 200 with {"ok": true}; anything else, with why, and
    whether asking again may help (429 and 5xx). Never raises, whatever the body."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    if status == 200 and answer.get("ok") is True:
        return Answer(True, "sent", None, False)
    description = answer.get("description")
    reason = f"HTTP {status}: {description[:200] if isinstance(description, str) else ''}"
    parameters = answer.get("parameters")
    retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or not math.isfinite(retry_after):
        retry_after = None
    else:
        retry_after = min(max(float(retry_after), 0.0), MAX_WAIT)
    return Answer(False, reason, retry_after, status == 429 or status >= 500)
