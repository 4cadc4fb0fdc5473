"""A fingerprint of the validated prefix of a file: catches a rewrite of bytes already read, cheaply.

Digests of the head, the tail and a reservoir sample of fixed-size blocks; checking re-reads only those.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field

BLOCK = 4096                   # fingerprint block size
SAMPLED_BLOCKS = 16            # blocks of the validated region re-read each collection


@dataclass
class Fingerprint:
    """Digests of the head, the tail and a reservoir sample of blocks of the validated bytes."""

    validated: int = 0
    head: bytes = b""
    tail: bytes = b""
    blocks: dict[int, bytes] = field(default_factory=dict)   # block index -> digest
    seen_blocks: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0x5EED))

    def extend(self, fd: int, validated: int) -> None:
        """Take the newly validated bytes, up to offset `validated`, into the fingerprint."""
        for index in range(self.seen_blocks, validated // BLOCK):
            self.seen_blocks += 1
            if len(self.blocks) < SAMPLED_BLOCKS:
                self.blocks[index] = _digest(fd, index * BLOCK, BLOCK)
                continue
            slot = self.rng.randrange(self.seen_blocks)   # reservoir sampling: every block equally likely
            if slot < SAMPLED_BLOCKS:
                del self.blocks[sorted(self.blocks)[slot]]
                self.blocks[index] = _digest(fd, index * BLOCK, BLOCK)
        self.validated = validated
        self.head, self.tail = self._ends(fd)

    def _ends(self, fd: int) -> tuple[bytes, bytes]:
        start = max(0, self.validated - BLOCK)
        return _digest(fd, 0, min(BLOCK, self.validated)), _digest(fd, start, self.validated - start)

    def matches(self, fd: int) -> bool:
        """Whether the sampled validated bytes still read as they did."""
        if self._ends(fd) != (self.head, self.tail):
            return False
        return all(_digest(fd, index * BLOCK, BLOCK) == digest for index, digest in self.blocks.items())


def _digest(fd: int, offset: int, length: int) -> bytes:
    return hashlib.blake2b(os.pread(fd, length, offset), digest_size=16).digest()
