"""Group commit: concurrent callers' work in one transaction, one commit (one fsync) for all of them.

Each caller still returns only after the commit that holds its work ("recorded before acknowledged"). The
first caller to find no commit in progress leads: it takes every piece of work queued so far, runs each
after a savepoint of one transaction (a piece that raises is rolled back alone and its caller gets the
error), commits, and wakes each of its callers; work that arrived meanwhile is the next batch, led by its
first caller, whom the leader wakes to lead it. Under an alert storm this turns a commit per webhook
delivery into a commit per batch, and every waiting caller is woken once.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

MAX_BATCH = 256        # pieces of work per commit: bounds how long one leader holds the others


class _Work(Generic[T]):
    __slots__ = ("fn", "ready", "lead", "result", "error")

    def __init__(self, fn: Callable[[], T]):
        self.fn, self.result, self.error = fn, None, None
        self.ready = threading.Event()     # set once: its batch committed, or it is handed the lead
        self.lead = False


class GroupCommit:
    def __init__(self, transaction: Callable, savepoint: Callable[[str], None], rollback_to: Callable[[str], None]):
        self.transaction, self.savepoint, self.rollback_to = transaction, savepoint, rollback_to
        self._mutex = threading.Lock()
        self._queue: list[_Work] = []
        self._leading = False
        self.batches = 0          # commits made, for the bench and tests
        self.pieces = 0           # pieces of work committed

    def run(self, fn: Callable[[], T]) -> T:
        work = _Work(fn)
        with self._mutex:
            self._queue.append(work)
            follow, self._leading = self._leading, True
        if follow:
            # each waiter is woken once, by its own event: when its batch is committed, or to lead the next
            # (a condition's notify_all woke every waiter at every commit, most of them to find their work not
            # yet done: bench.webhook_storm spends 40% of the remediator's time in the kernel's task switching)
            work.ready.wait()
        if work.lead or not follow:
            self._lead(work)
        if work.error is not None:
            raise work.error
        return work.result

    def _lead(self, leader: _Work) -> None:
        with self._mutex:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        committed = False
        try:
            self._commit(batch)
            committed = True
        finally:
            if not committed:         # a BaseException (the interpreter stopping) went through: nothing is recorded
                for piece in batch:
                    piece.error = piece.error or RuntimeError("not recorded: the commit was interrupted")
            with self._mutex:
                self.batches += 1
                self.pieces += len(batch)
                if self._queue:                   # what arrived meanwhile: its first waiter leads it
                    heir = self._queue[0]
                    heir.lead = True
                    heir.ready.set()
                else:
                    self._leading = False
            for piece in batch:
                if piece is not leader:
                    piece.ready.set()

    def _commit(self, batch: list[_Work]) -> None:
        try:
            with self.transaction():
                if len(batch) == 1:           # alone: its transaction is its savepoint (rolled back if it raises)
                    batch[0].result = batch[0].fn()
                    return
                for index, piece in enumerate(batch):
                    name = f"piece{index}"
                    self.savepoint(name)
                    try:
                        piece.result = piece.fn()
                    except Exception as err:  # this caller's error: the others' work stands
                        self.rollback_to(name)
                        piece.error = err
                    # not released: the commit ends every savepoint, and a statement less a piece counts here
        except Exception as err:  # the commit failed, or a lone piece raised: nothing of the batch was recorded
            for piece in batch:
                piece.error = piece.error or err
