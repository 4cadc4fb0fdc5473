"""Serving a WSGI app until SIGTERM or Ctrl-C, and the small parsers the commands share."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Callable

log = logging.getLogger(__name__)


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT; the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT like 127.0.0.1:{default_port}")
    return host, int(port)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT to leave the server loop."""


def serve(app, host: str, port: int, name: str, on_stop: Callable[[], None] = lambda: None,
          threads: int = 8) -> None:
    """Serve `app` with waitress until SIGTERM/SIGINT; then close it, run `on_stop` and return."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident=name)

    def stop(signum, _frame):
        # raise like Python's own SIGINT handler: the main thread only runs waitress' I/O loop, and
        # closing the server (which joins its worker threads) is done below, outside the handler
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%s listening on http://%s:%s/", name, host, server.effective_port)
    try:
        server.run()
    except _Stop as received:
        log.info("%s: %s received, stopping", name, received)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        server.close()
        on_stop()
        log.info("%s stopped", name)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
