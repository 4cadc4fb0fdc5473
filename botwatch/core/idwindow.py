"""The duplicate-trade-id window: 64-bit hashes of the last N trade ids, in sorted generations.

A trade id is a duplicate when the same id was seen among (at least) the last `size` rows. Ids are
kept as 64-bit hashes (8 bytes each, no Python objects): generations of `size // GENERATIONS` hashes,
sealed and sorted when full, plus the generation being filled. The oldest generation is dropped once
the others still cover `size` rows, so fewer than `size + 2 * size / 32` hashes are held (< 0.17 MB at the
default 20,000).

A hash collision can only make a fresh id look like a duplicate (a false "duplicate", which the full
re-check after a repair clears): a real duplicate always hashes equal, so one is never missed.

Every row that reaches the check is remembered, duplicate or not, so which rows are remembered
depends only on how many came before: checking rows one batch at a time or all at once gives the
same answers, which is what lets the vectorized and the row-by-row paths agree exactly.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

GENERATIONS = 32              # a window is this many sealed generations (plus the one being filled)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def hash_fields(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """64-bit hashes (FNV-1a, then a splitmix64 finisher) of byte fields `buffer[start:start+length]`."""
    hashes = np.empty(len(starts), dtype=np.uint64)
    if not len(starts):
        return hashes
    with np.errstate(over="ignore"):
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            h = np.full(len(rows), _FNV_OFFSET, dtype=np.uint64)
            base = starts[rows]
            for i in range(int(length)):
                h ^= buffer[base + i].astype(np.uint64)
                h *= _FNV_PRIME
            h ^= np.uint64(length)
            hashes[rows] = _finish(h)
    return hashes


def _finish(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def hash_ids(ids: Iterable[str]) -> np.ndarray:
    """The hashes of trade ids as strings (their UTF-8 bytes), the same as `hash_fields` gives."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in ids]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded), dtype=np.int64)
    if len(encoded) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    buffer = np.frombuffer(b"".join(encoded) + b"\0", dtype=np.uint8)
    return hash_fields(buffer, starts, lengths)


class IdWindow:
    """Hashes of the most recent trade ids; `check` answers, in order, which of a batch were seen."""

    def __init__(self, size: int):
        self.size = size
        self.generation = max(1, -(-size // GENERATIONS))
        self.sealed: list[np.ndarray] = []          # oldest first, each sorted, each `generation` long
        self.fresh = np.empty(self.generation, dtype=np.uint64)
        self.filled = 0                             # hashes in `fresh`
        self.added = 0                              # rows remembered since the start (checkpoint identity)

    def __len__(self) -> int:
        return sum(len(g) for g in self.sealed) + self.filled

    def check(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash in order: was it seen before (in the window or earlier in `hashes`)? Then remember all."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if len(hashes) > self.generation:
            return self._check_many(hashes)
        seen = np.zeros(len(hashes), dtype=bool)
        at = 0
        while at < len(hashes):
            take = min(self.generation - self.filled, len(hashes) - at)
            part = hashes[at:at + take]
            seen[at:at + take] = self._seen(part)
            self.fresh[self.filled:self.filled + take] = part
            self.filled += take
            self.added += take
            at += take
            if self.filled == self.generation:
                self._seal()
        return seen

    def _kept_from(self, added: np.ndarray | int):
        """The first row remembered after `added` rows: whole generations, the fewest that cover `size`."""
        sealed = added // self.generation
        return (sealed - np.minimum(sealed, -(-self.size // self.generation))) * self.generation

    def _check_many(self, hashes: np.ndarray) -> np.ndarray:
        """`check` for a long batch, in one sort: row i was seen when the latest earlier row with the same
        hash is still remembered when row i comes (rows of a sealed generation all count as its first)."""
        g = self.generation
        first_fresh = self.added - self.filled
        old_index = [np.full(g, first_fresh - (len(self.sealed) - j) * g, dtype=np.int64)
                     for j in range(len(self.sealed))]
        old_index.append(np.arange(first_fresh, self.added, dtype=np.int64))
        values = np.concatenate(self.sealed + [self.fresh[:self.filled], hashes])
        index = np.concatenate(old_index + [np.arange(self.added, self.added + len(hashes), dtype=np.int64)])
        order = np.argsort(values, kind="stable")           # equal hashes stay in row order
        ordered, at = values[order], index[order]
        repeat = np.zeros(len(values), dtype=bool)
        repeat[1:] = ordered[1:] == ordered[:-1]
        previous = np.full(len(values), -1, dtype=np.int64)
        previous[1:] = at[:-1]
        seen_sorted = repeat & (previous >= self._kept_from(at))
        seen = np.empty(len(values), dtype=bool)
        seen[order] = seen_sorted
        seen = seen[len(values) - len(hashes):]

        total = self.added + len(hashes)
        kept_from = int(self._kept_from(total))
        sealed_end = total - total % g
        sealed = [gen for j, gen in enumerate(self.sealed) if first_fresh - (len(self.sealed) - j) * g >= kept_from]
        stream = np.concatenate((self.fresh[:self.filled], hashes))    # rows from first_fresh on, in order
        for start in range(max(kept_from, first_fresh), sealed_end, g):
            sealed.append(np.sort(stream[start - first_fresh:start - first_fresh + g]))
        self.sealed = sealed
        self.fresh = np.empty(g, dtype=np.uint64)
        self.filled = total - sealed_end
        self.fresh[:self.filled] = stream[sealed_end - first_fresh:]
        self.added = total
        return seen

    def _seen(self, part: np.ndarray) -> np.ndarray:
        # earlier in the generation being filled, or earlier in this part: not a first occurrence
        pool = np.concatenate((self.fresh[:self.filled], part))
        _, first = np.unique(pool, return_index=True)
        seen = np.ones(len(pool), dtype=bool)
        seen[first] = False
        seen = seen[self.filled:]
        for generation in self.sealed:
            found = np.searchsorted(generation, part)
            found[found == len(generation)] = 0
            seen |= generation[found] == part
        return seen

    def _seal(self) -> None:
        self.sealed.append(np.sort(self.fresh))
        self.fresh = np.empty(self.generation, dtype=np.uint64)
        self.filled = 0
        while self.sealed and len(self) - len(self.sealed[0]) >= self.size:
            self.sealed.pop(0)

    def mark(self) -> tuple:
        """What `rollback` needs to undo the checks made after this call."""
        return list(self.sealed), self.fresh.copy(), self.filled, self.added

    def rollback(self, mark: tuple) -> None:
        sealed, fresh, self.filled, self.added = mark
        self.sealed, self.fresh = list(sealed), fresh

    # -- checkpoints ------------------------------------------------------------------------------

    def state(self) -> tuple[int, list[np.ndarray], np.ndarray]:
        return self.added, list(self.sealed), self.fresh[:self.filled].copy()

    @classmethod
    def restored(cls, size: int, added: int, sealed: list[np.ndarray], fresh: np.ndarray) -> IdWindow:
        """A window from `state()`; raises ValueError when the parts can't be one `size` window's."""
        window = cls(size)
        if (len(fresh) >= window.generation or any(len(g) != window.generation for g in sealed)
                or any(np.any(g[1:] < g[:-1]) for g in sealed)
                or added != (added // window.generation) * window.generation + len(fresh)
                or len(sealed) > added // window.generation):
            raise ValueError("the id window's parts do not fit its size")
        window.sealed = [np.asarray(g, dtype=np.uint64) for g in sealed]
        window.fresh[:len(fresh)] = fresh
        window.filled = len(fresh)
        window.added = added
        return window
