"""Telegram delivery through the Bot API's sendMessage (HTML), with retries; an outbox file without a token.

Used for the remediator's notices and the morning report. A failure is logged and counted, never silent,
and never raised into a playbook.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

import requests

from botwatch.core.config import Telegram

log = logging.getLogger(__name__)

LIMIT = 4096
ATTEMPTS = 4


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
                answer = _json(response)
            except requests.RequestException as err:
                reason, retry_after = type(err).__name__, None
            else:
                if response.status_code == 200 and answer.get("ok"):
                    self._count("sent")
                    return True
                reason = f"HTTP {response.status_code}: {str(answer.get('description', ''))[:200]}"
                retry_after = (answer.get("parameters") or {}).get("retry_after")
                if response.status_code != 429 and response.status_code < 500:
                    break   # a 4xx other than 429 will not get better by asking again
            if attempt < ATTEMPTS:
                wait = float(retry_after) if isinstance(retry_after, (int, float)) else delay
                self.sleep(min(wait, 60.0))
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


def _json(response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
