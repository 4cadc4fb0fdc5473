"""Verification after an action: look until the bot is well or a deadline passes, never once after a fixed
wait (a restored bot that replays a long journal at start is well a moment later, not "not up")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

POLL_EVERY = 1.0        # seconds between looks: the exporter's fastest check interval


@dataclass(frozen=True)
class Verdict(Generic[T]):
    ok: bool
    waited: float         # seconds from the action to the look that decided
    last: T               # what the judge said at that look


def verify(judge: Callable[[], tuple[bool, T]], clock: Callable[[], float], sleep: Callable[[float], None],
           first_look: float, within: float, every: float = POLL_EVERY) -> Verdict[T]:
    """Look after `first_look` seconds, then every `every` until `judge` says ok or `within` seconds have
    passed since the call (success as soon as it is ok). Bounded by a count of looks as well as by the
    clock, so a clock that does not move (a test's) still ends."""
    started = clock()
    sleep(first_look)
    looks = max(1, math.ceil(max(within - first_look, 0) / every) + 1)
    for look in range(looks):
        ok, last = judge()
        waited = clock() - started
        if ok or look == looks - 1 or waited >= within:
            return Verdict(ok, waited, last)
        sleep(min(every, max(within - waited, 0)))
    raise AssertionError("unreachable")
