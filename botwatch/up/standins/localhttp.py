"""Local HTTP stand-ins (the Telegram outbox, the local exchange, the tests' Telegram stand-in): a request
handler that answers JSON, and a server on 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    def send_json(self, code: int, body, headers: dict | None = None) -> None:
        """Answer `code` with `body` (bytes as they are, anything else as JSON)."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class LocalServer:
    """`handler` served on 127.0.0.1 (any free port by default) until close()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, name: str = "local-http",
                 host: str = "127.0.0.1"):
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name=name, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
