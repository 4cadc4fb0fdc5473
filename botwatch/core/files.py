"""Writing files so that a crash never leaves half of one: temp file, fsync, rename, fsync the folder."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 1024 * 1024
PROGRESS_FROM = 1024 * 1024     # smaller writes finish before a bar could be read


def _read_umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every thread a moment)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


UMASK = _read_umask()


def write_atomic(path: Path, data: bytes | str, private: bool = False, label: str | None = None) -> None:
    """Replace `path` with `data` atomically and durably: readers see the old file or the new, never half.

    `private` makes the file readable by its owner only (it holds a secret), from its first byte.
    `label` shows a progress bar on a terminal for a large write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if not private:
                os.fchmod(f.fileno(), 0o644 & ~UMASK)
            write_chunks(f, payload, label)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_chunks(f, data: bytes, label: str | None = None) -> None:
    """Write `data` to `f` a megabyte at a time; on a terminal a bar moves with the bytes written."""
    with progress(len(data), label) as advance:
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            advance(f.write(view[start:start + CHUNK]))


@contextmanager
def progress(total: int, label: str | None) -> Iterator[Callable[[int], None]]:
    """A function to call with each number of bytes done: a tqdm bar on a terminal, nothing elsewhere."""
    if not label or total <= PROGRESS_FROM or not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm
    with tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr) as bar:
        yield bar.update


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
