"""A local stand-in for the Telegram Bot API (unreachable from here) that checks each request's shape."""

from __future__ import annotations


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
                if "chat_id" not in data:
                    stand_in.errors.append(f"{method} without chat_id")
                    return self.send_json(400, {"ok": False, "error_code": 400, "description": "chat_id is empty"})
                if method == "sendMessage" and len(str(data.get("text", ""))) > 4096:
                    stand_in.errors.append("message longer than 4096")
                    return self.send_json(400, {"ok": False, "error_code": 400, "description": "message is too long"})
                self.send_json(200, bot_api_answer(data))

        self.http = LocalServer(Handler, name="telegram-stand-in")
        self.url = self.http.url

    def messages(self) -> list[dict]:
        """The sendMessage requests that were answered ok."""
        return [r["data"] for r in self.requests if r["method"] == "sendMessage" and r["status"] == 200]

    def close(self):
        self.http.close()
