"""Keeping a long-running process's resident memory near what it holds (glibc only; elsewhere no-ops).

A large read's buffers are freed at its end, but glibc keeps freed heap for reuse, per arena, and makes
up to 8 arenas per core for a process with many threads: a fleet-sized exporter then sits on hundreds of
MB it no longer uses. `tune()` caps the arenas at two and fixes the mmap threshold at 1 MiB (glibc
otherwise raises it as big blocks are freed, up to 32 MiB, and a large read's arrays then land in the
heap, where they fragment it); `give_back()` returns free heap pages to the system (malloc_trim), cheap
enough to call after each large read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _mallopt, _malloc_trim = _libc.mallopt, _libc.malloc_trim
except (OSError, AttributeError):        # not glibc: nothing to tune
    _mallopt = _malloc_trim = None


def tune(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas and fix its mmap threshold; call before the threads start."""
    if _mallopt is None:
        return
    for option, value, name in ((_M_ARENA_MAX, arenas, "M_ARENA_MAX"), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD,
                                                                         "M_MMAP_THRESHOLD")):
        if not _mallopt(option, value):
            log.debug("mallopt(%s) refused", name)


def give_back() -> None:
    """Return the free parts of the heap to the system."""
    if _malloc_trim is not None:
        _malloc_trim(0)
