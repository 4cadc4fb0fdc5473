"""Serving a WSGI app until SIGTERM or Ctrl-C, and the small parsers the commands share."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Callable

log = logging.getLogger(__name__)


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT; the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT like 127.0.0.1:{default_port}")
    return host, int(port)


def serve(app, host: str, port: int, name: str, on_stop: Callable[[], None] = lambda: None,
          threads: int = 8) -> None:
    """Serve `app` with waitress until SIGTERM/SIGINT; then run `on_stop` and return."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident=name)
    stopped = threading.Event()

    def stop(signum, _frame):
        log.info("%s: %s received, stopping", name, signal.Signals(signum).name)
        stopped.set()
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%s listening on http://%s:%s/", name, host, server.effective_port)
    try:
        server.run()
    except (OSError, ValueError):
        if not stopped.is_set():
            raise
    finally:
        on_stop()
        log.info("%s stopped", name)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
