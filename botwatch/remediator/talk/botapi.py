"""The few Bot API methods the commands use: getUpdates (long polling), sendMessage with a keyboard,
answerCallbackQuery, editMessageText. Every call goes to `telegram.api_url`, so tests use a stand-in."""

from __future__ import annotations

import requests

from botwatch.remediator.tell.notifier import LIMIT, read_answer


class ApiError(Exception):
    def __init__(self, status: int | None, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.status, self.retry_after = status, retry_after


class BotApi:
    def __init__(self, api_url: str, token: str, session: requests.Session | None = None, timeout: float = 10.0):
        self.base = f"{api_url.rstrip('/')}/bot{token}"
        self.session = session or requests.Session()
        self.timeout = timeout

    def call(self, method: str, payload: dict, wait: float = 0.0):
        """The call's `result`; ApiError with Telegram's reason (and its retry_after) otherwise."""
        try:
            response = self.session.post(f"{self.base}/{method}", json=payload, timeout=self.timeout + wait)
        except requests.RequestException as err:
            raise ApiError(None, f"{method}: {type(err).__name__}") from None
        answer = read_answer(response.status_code, response.content)
        if not answer.ok:
            raise ApiError(response.status_code, f"{method}: {answer.reason}", answer.retry_after)
        return response.json().get("result")

    def updates(self, offset: int | None, timeout: float) -> list[dict]:
        """The updates after `offset` (Telegram's: the first one not yet confirmed), waiting up to `timeout`
        seconds for one. A second poller of the same bot gets 409 Conflict."""
        payload = {"timeout": int(timeout), "allowed_updates": ["message", "callback_query"]}
        if offset is not None:
            payload["offset"] = offset
        result = self.call("getUpdates", payload, wait=timeout)
        return [u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)] \
            if isinstance(result, list) else []

    def send(self, chat_id: int, text: str, reply_to: int | None = None, buttons: list[tuple[str, str]] | None = None):
        payload = {"chat_id": chat_id, "text": text[:LIMIT], "parse_mode": "HTML", "disable_web_page_preview": True}
        if reply_to is not None:
            payload["reply_to_message_id"] = reply_to
            payload["allow_sending_without_reply"] = True
        if buttons:
            payload["reply_markup"] = {"inline_keyboard": [[{"text": label, "callback_data": data}
                                                            for label, data in buttons]]}
        return self.call("sendMessage", payload)

    def answer_callback(self, callback_id: str, text: str) -> None:
        self.call("answerCallbackQuery", {"callback_query_id": callback_id, "text": text[:200]})

    def edit(self, chat_id: int, message_id: int, text: str) -> None:
        self.call("editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text[:LIMIT],
                                      "parse_mode": "HTML"})
