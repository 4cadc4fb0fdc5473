"""Serving a WSGI app until SIGTERM or Ctrl-C, and the small parsers the commands share."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it is free on 127.0.0.1, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def free_ports(wanted: dict[str, int | None]) -> dict[str, int]:
    """A free port on 127.0.0.1 for each name (its preferred one when free), all different: every socket is
    held until all are chosen (one at a time, the kernel can hand the same free port out twice)."""
    held: dict[str, socket.socket] = {}
    try:
        for name, preferred in wanted.items():
            for port in ([preferred] if preferred else []) + [0]:
                s = socket.socket()
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    s.close()
                    continue
                held[name] = s
                break
            else:
                raise RuntimeError("no free port on 127.0.0.1")
        return {name: s.getsockname()[1] for name, s in held.items()}
    finally:
        for s in held.values():
            s.close()


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT; the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT like 127.0.0.1:{default_port}")
    return host, int(port)


class StartupError(Exception):
    """A mistake a user can make at start-up (a port in use, a folder not writable): one line, exit 2."""


def writable_dir(path: Path | str, what: str) -> Path:
    """`path` resolved and created if missing; StartupError naming `what` when it can't be written."""
    path = Path(path).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise StartupError(f"{what} {path} is not a writable folder: {err.strerror}") from None
    return path


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to leave the server loop. A SystemExit, as Python's own
    SIGINT raises KeyboardInterrupt: waitress' loop swallows any Exception raised while it handles a socket
    event (logged as "uncaptured python exception"), so a stop that landed there was lost and the server
    ran on (seen under load: the exporter did not stop on SIGTERM)."""


def bind(app, host: str, port: int, name: str, threads: int = 8, web=None):
    """A server for `app` listening on host:port, or StartupError saying why it can't: waitress for plain
    HTTP; with a web config's tls_server_config, cheroot (CherryPy's WSGI server) with its TLS adapter and the
    config's context (waitress serves no TLS). `web` is a botwatch.core.webconfig.WebConfig."""
    try:
        if web is not None and web.tls:
            return _TLSServer(app, host, port, name, threads, web)
        from waitress.server import create_server
        server = create_server(app, host=host, port=port, threads=threads, ident=name)
        server.scheme = "http"
        return server
    except OSError as err:     # cheroot says "in use" in words only
        in_use = err.errno == errno.EADDRINUSE or "Address already in use" in str(err)
        reason = "already in use (is another botwatch running?)" if in_use else (
            err.strerror or str(err))
        raise StartupError(f"--listen {host}:{port}: {reason}") from None


class _TLSServer:
    """cheroot serving HTTPS, with the few methods `serve` uses of waitress' server."""

    scheme = "https"

    def __init__(self, app, host: str, port: int, name: str, threads: int, web):
        from cheroot import wsgi
        from cheroot.ssl.builtin import BuiltinSSLAdapter
        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name=name, timeout=10)
        # cheroot writes its own complaints (a client that distrusts the certificate, plain HTTP on the TLS
        # port) to stderr; here they go through logging like the rest
        self.server.error_log = lambda msg="", level=logging.INFO, traceback=False: log.log(
            level, "%s: %s", name, msg, exc_info=traceback)
        adapter = BuiltinSSLAdapter(str(web.cert_file), str(web.key_file))
        adapter.context = web.ssl_context()
        self.server.ssl_adapter = adapter
        self.server.prepare()           # binds now: a port in use is said before anything else starts
        self.effective_host, self.effective_port = self.server.bind_addr[:2]

    def run(self) -> None:
        self.server.serve()

    def close(self) -> None:
        self.server.stop()


def serve(server, name: str, on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve with a bound server until SIGTERM/SIGINT; then close it, run `on_stop` and return."""

    def stop(signum, _frame):
        # raise like Python's own SIGINT handler: the main thread only runs waitress' I/O loop, and
        # closing the server (which joins its worker threads) is done below, outside the handler
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%s listening on %s://%s:%s/", name, server.scheme, server.effective_host, server.effective_port)
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
