"""The /metrics page, assembled from per-bot pieces rendered when each bot's check finishes.

A scrape of a few hundred bots is thousands of samples; formatting them all on every scrape costs tens of
ms of CPU, and while checks run the scrape's thread has to win the GIL for each slice of that work. So
each bot's samples are rendered (by prometheus_client's own encoder, in every format scrapes ask for)
in the check thread, right after its check, and a scrape only joins the pieces family by family:
the same bytes a single render of every bot would give, for a fraction of the CPU.
"""

from __future__ import annotations

import gzip
import logging
import time
from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from botwatch.exporter.collector import bot_families, exporter_families, family_order
from botwatch.exporter.monitor import Monitor

log = logging.getLogger(__name__)

_EOF = b"# EOF\n"
GZIP_LEVEL = 1        # Prometheus asks for gzip on every scrape: fast compression, still ~5x smaller


class _Static:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def render(families, encoder: Callable) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(list(families)))
    return encoder(registry)


def split_families(text: bytes) -> list[tuple[str, bytes, bytes]]:
    """(family name, its # lines, its sample lines) for each family of a rendered page, in order."""
    blocks: list[tuple[str, list[bytes], list[bytes]]] = []
    for line in text.splitlines(keepends=True):
        if line == _EOF:
            continue
        if line.startswith(b"# HELP ") or line.startswith(b"# TYPE ") or line.startswith(b"# UNIT "):
            name = line.split(b" ", 3)[2].decode()
            if not blocks or blocks[-1][0] != name or blocks[-1][2]:
                blocks.append((name, [], []))
            blocks[-1][1].append(line)
        else:
            blocks[-1][2].append(line)
    return [(name, b"".join(head), b"".join(samples)) for name, head, samples in blocks]


class MetricsPage:
    """Per-bot rendered pieces, kept fresh by the monitor, joined on each scrape."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor
        self.bots = {bot.name: bot for bot in monitor.config.bots}
        self.order = family_order()
        self._encoders: dict[str, Callable] = {}                  # content type -> encoder scrapes asked for
        self._pieces: dict[tuple[str, str], tuple[object, list]] = {}   # (bot, content type) -> (status, blocks)
        monitor.on_result.append(self.update)

    def update(self, name: str, status) -> None:
        """Render a bot's pieces in every format asked for so far (called in the check thread)."""
        for content_type, encoder in list(self._encoders.items()):
            self._pieces[(name, content_type)] = (status, self._render(name, status, encoder))

    def _render(self, name: str, status, encoder: Callable) -> list:
        return split_families(render(bot_families(self.bots[name], status), encoder))

    def page(self, accept: str | None) -> tuple[bytes, str]:
        started = time.monotonic()
        encoder, content_type = choose_encoder(accept or "")
        self._encoders.setdefault(content_type, encoder)
        results = self.monitor.snapshot()
        families: dict[str, tuple[bytes, list[bytes]]] = {}
        for name in self.bots:
            status = results.get(name)
            piece = self._pieces.get((name, content_type))
            if piece is None or piece[0] is not status:         # not rendered yet in this format, or outdated
                piece = (status, self._render(name, status, encoder))
                self._pieces[(name, content_type)] = piece
            for family, head, samples in piece[1]:
                families.setdefault(family, (head, []))[1].append(samples)
        parts = []
        for family in sorted(families, key=lambda f: self.order.get(f, len(self.order))):
            head, samples = families[family]
            parts.append(head)
            parts.extend(samples)
        tail = render(exporter_families(self.monitor, started), encoder)
        parts.append(tail)
        return b"".join(parts), content_type

    def wsgi(self, environ, start_response):
        body, content_type = self.page(environ.get("HTTP_ACCEPT"))
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]
