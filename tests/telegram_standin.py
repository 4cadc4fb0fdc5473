"""A local stand-in for the Telegram Bot API (unreachable from here) that checks each request's shape."""

from __future__ import annotations

import itertools
import threading
import time

from botwatch.up.standins.localhttp import JSONHandler, LocalServer
from botwatch.up.standins.outbox import bot_api_answer, bot_api_request


class TelegramStandIn:
    """A local stand-in for the Telegram Bot API (unreachable here) that checks each request's shape.

    It answers like the real API — {"ok": true, "result": {message_id, date, chat{id,type}, text}} —
    without which Alertmanager 0.25 crashes on a nil chat.
    """

    def __init__(self, token: str = "123456:TEST-token"):
        self.token = token
        self.requests: list[dict] = []
        self.errors: list[str] = []
        self.fail_with: list[tuple[int, dict]] = []   # queued error answers, e.g. (429, {"retry_after": 1})
        # what the bot's users send it, for getUpdates (long polling, as the real API: an update stays until a
        # later call's offset passes it; a getUpdates that arrives while another waits ends that one with 409)
        self.updates: list[dict] = []
        self.polls = 0                    # getUpdates calls answered
        self.conflicts = 0                # getUpdates ended by a newer one (409)
        self._changed = threading.Condition()
        self._poll_turn = 0
        self._ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        stand_in = self

        class Handler(JSONHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ctype = self.headers.get("Content-Type", "")
                data = bot_api_request(ctype, body)
                method = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith(f"/bot{stand_in.token}/"):
                    stand_in.errors.append(f"wrong token path {self.path}")
                    return self.send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                request = {"method": method, "data": data, "content_type": ctype, "status": 200}
                stand_in.requests.append(request)
                if stand_in.fail_with:
                    code, params = stand_in.fail_with.pop(0)
                    request["status"] = code
                    return self.send_json(code, {"ok": False, "error_code": code, "description": "stand-in error",
                                               "parameters": params})
                if method == "getUpdates":
                    code, answer = stand_in._get_updates(data)
                    request["status"] = code
                    return self.send_json(code, answer)
                if method == "answerCallbackQuery":
                    if not isinstance(data.get("callback_query_id"), str):
                        stand_in.errors.append("answerCallbackQuery without callback_query_id")
                    return self.send_json(200, {"ok": True, "result": True})
                if "chat_id" not in data:
                    stand_in.errors.append(f"{method} without chat_id")
                    return self.send_json(400, {"ok": False, "error_code": 400, "description": "chat_id is empty"})
                if method == "sendMessage" and len(str(data.get("text", ""))) > 4096:
                    stand_in.errors.append("message longer than 4096")
                    return self.send_json(400, {"ok": False, "error_code": 400, "description": "message is too long"})
                if method == "sendMessage":
                    markup = data.get("reply_markup")
                    if markup is not None and not all(len(b.get("callback_data", "").encode()) <= 64
                                                      for row in markup["inline_keyboard"] for b in row):
                        stand_in.errors.append("callback_data over 64 bytes")
                    return self.send_json(200, stand_in._sent(data))
                self.send_json(200, bot_api_answer(data))

        self.http = LocalServer(Handler, name="telegram-stand-in")
        self.url = self.http.url

    def _get_updates(self, data: dict) -> tuple[int, dict]:
        offset, timeout = data.get("offset"), float(data.get("timeout", 0))
        deadline = time.monotonic() + min(timeout, 30)
        with self._changed:
            self._poll_turn += 1
            turn = self._poll_turn
            self._changed.notify_all()                       # a poll still waiting is ended by this one
            if isinstance(offset, int):
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while True:
                if turn != self._poll_turn:
                    self.conflicts += 1
                    return 409, {"ok": False, "error_code": 409, "description": "Conflict: terminated by other "
                                 "getUpdates request; make sure that only one bot instance is running"}
                if self.updates or time.monotonic() >= deadline:
                    self.polls += 1
                    return 200, {"ok": True, "result": list(self.updates[:100])}
                self._changed.wait(max(0.0, deadline - time.monotonic()))

    def _push(self, update: dict) -> int:
        with self._changed:
            update["update_id"] = next(self._ids)
            self.updates.append(update)
            self._changed.notify_all()
            return update["update_id"]

    def say(self, text: str, chat: int = 42, user: int = 42, username: str = "ana", chat_type: str | None = None,
            reply_to: str | None = None) -> int:
        """A user's message to the bot (a private chat when chat == user), or their reply to a message of the
        bot's whose text (as Telegram gives it back: plain, no markup) is `reply_to`; its update_id."""
        chat_info = {"id": chat, "type": chat_type or ("private" if chat == user else "group")}
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "text": text, "chat": chat_info,
                   "from": {"id": user, "is_bot": False, "first_name": username, "username": username}}
        if reply_to is not None:
            message["reply_to_message"] = {"message_id": next(self._message_ids), "date": int(time.time()),
                                           "chat": chat_info, "text": reply_to,
                                           "from": {"id": 123456, "is_bot": True, "first_name": "botwatch"}}
        return self._push({"message": message})

    def press(self, message: dict, data: str, user: int = 42, username: str = "ana") -> int:
        """A press on a button of a message the bot sent (as `messages()` lists it)."""
        return self._push({"callback_query": {
            "id": f"cb{next(self._ids)}", "data": data, "chat_instance": "1",
            "from": {"id": user, "is_bot": False, "first_name": username, "username": username},
            "message": {"message_id": message["message_id"], "date": int(time.time()), "text": message["text"],
                        "chat": {"id": int(message["chat_id"]), "type": "private"}}}})

    def _sent(self, data: dict) -> dict:
        message_id = next(self._message_ids)
        data["message_id"] = message_id
        chat = data.get("chat_id")
        return {"ok": True, "result": {"message_id": message_id, "date": int(time.time()),
                                       "chat": {"id": int(chat) if str(chat).lstrip("-").isdigit() else chat,
                                                "type": "private"}, "text": str(data.get("text", ""))}}

    def messages(self) -> list[dict]:
        """The sendMessage requests that were answered ok."""
        return [r["data"] for r in self.requests if r["method"] == "sendMessage" and r["status"] == 200]

    def close(self):
        with self._changed:                  # a poll still waiting ends now (409), not after its timeout
            self._poll_turn += 1
            self._changed.notify_all()
        self.http.close()
