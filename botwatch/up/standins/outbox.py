"""A local stand-in for the Telegram Bot API that `botwatch up` points Alertmanager and the remediator at
when no real bot token is configured: it answers like the Bot API and appends each message to a file.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from botwatch.up.standins.localhttp import JSONHandler, LocalServer


def bot_api_request(content_type: str, body: bytes) -> dict:
    """The parameters of a Bot API call, sent as JSON, a form, or multipart (files as bytes)."""
    if "json" in content_type:
        data = json.loads(body or b"{}")
        return data if isinstance(data, dict) else {}
    if "form-urlencoded" in content_type:
        from urllib.parse import parse_qs
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}
    if "multipart/form-data" in content_type:
        from email.parser import BytesParser
        from email.policy import HTTP
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields = {}
        for part in message.iter_parts():
            payload = part.get_payload(decode=True)
            fields[part.get_param("name", header="content-disposition")] = (
                payload if part.get_filename() else payload.decode())
        return fields
    return {}


def bot_api_answer(data: dict) -> bytes:
    """The answer the real Bot API gives a sent message; Alertmanager 0.25 crashes without `result.chat`."""
    chat = data.get("chat_id", 0)
    try:
        chat = int(chat)
    except (TypeError, ValueError):
        pass
    text = data.get("text", "")
    return json.dumps({"ok": True, "result": {"message_id": 1, "date": int(time.time()),
                                              "chat": {"id": chat, "type": "private"},
                                              "text": text if isinstance(text, str) else ""}}).encode()


class TelegramOutbox:
    """A local stand-in for the Telegram Bot API: answers like it, and appends every message to a file."""

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 0):
        outbox = self
        self.path = path
        self.lock = threading.Lock()

        class Handler(JSONHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = bot_api_request(self.headers.get("Content-Type", ""), body)
                record = {k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in data.items()}
                method = self.path.rsplit("/", 1)[-1]
                with outbox.lock, open(outbox.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"time": time.time(), "method": method, **record}) + "\n")
                self.send_json(200, bot_api_answer(data))

        self.http = LocalServer(Handler, port, name="telegram-outbox", host=host)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m botwatch.up.standins.outbox --listen HOST:PORT --file F`: the outbox on its own, as a
    container of a compose stack tried without a real Telegram bot (the compose tests run it so)."""
    import argparse
    import signal
    parser = argparse.ArgumentParser(prog="python -m botwatch.up.standins.outbox")
    parser.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (default %(default)s)")
    parser.add_argument("--file", required=True, help="where each message is appended, one JSON line each")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    Path(args.file).parent.mkdir(parents=True, exist_ok=True)
    outbox = TelegramOutbox(Path(args.file), host or "127.0.0.1", int(port))
    stop = {"asked": False}     # a plain flag: a signal handler must not take locks
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(asked=True))
    print(f"telegram outbox on {args.listen}, writing {args.file}", flush=True)
    while not stop["asked"]:
        time.sleep(0.2)
    outbox.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
