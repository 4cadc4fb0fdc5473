"""Reads the bot's updates (getUpdates, long polling) and hands each to the desk, once.

Telegram lets one poller read a bot's updates (a second gets 409 Conflict), so remediator replicas take
turns through a lease in the ledger: the holder renews it before every poll, and a replica finds it
expired within LEASE_FOR of the holder's death and takes over. An update's id is recorded in the ledger
before it is acted on (with the lease checked in the same transaction): across a restart or a takeover
no update is handled twice; one whose handling a crash cut short is not handled again either.

Runs in its own thread: Telegram slow or away makes commands wait, nothing else.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Callable

from botwatch.core.loop import ServiceLoop
from botwatch.remediator.ledger import Ledger
from botwatch.remediator.talk.botapi import ApiError, BotApi

log = logging.getLogger(__name__)

LEASE_KEY = "telegram-poller"
OFFSET_KEY = "telegram-update"      # the last update_id taken
LEASE_FOR = 45.0                    # seconds: longer than one poll, so a live holder keeps it
WAIT_FOR_LEASE = 10.0               # how often a replica without the lease looks again
TROUBLE_WAIT = (1.0, 60.0)          # after a failed poll: doubling from, up to


class Poller(ServiceLoop):
    name = "telegram-commands"

    def __init__(self, api: BotApi, handle: Callable[[dict], None], ledger: Ledger, worker: str,
                 poll_timeout: float, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.api, self.handle, self.ledger = api, handle, ledger
        self.worker = f"{worker}/{os.getpid()}/{secrets.token_hex(3)}"     # this process, whatever it is called
        self.poll_timeout = min(poll_timeout, LEASE_FOR - 10)
        self._wait = TROUBLE_WAIT[0]
        self.holding = False          # whether this replica polls (for tests and the log)

    def step(self) -> float:
        if not self._hold():
            return WAIT_FOR_LEASE
        offset = self.ledger.get(OFFSET_KEY)
        try:
            updates = self.api.updates(offset + 1 if isinstance(offset, int) else None, self.poll_timeout)
        except ApiError as err:
            if err.status == 409:
                self.trouble("Telegram says another program reads this bot's updates (409 Conflict): a second "
                             "botwatch without a shared ledger, or another bot framework on the same token", "409")
            else:
                self.trouble(f"getUpdates failed: {err}", "poll")
            wait = err.retry_after if err.retry_after is not None else self._wait
            self._wait = min(self._wait * 2, TROUBLE_WAIT[1])
            return wait
        self._wait = TROUBLE_WAIT[0]
        for update in sorted(updates, key=lambda u: u["update_id"]):
            if self.stopping or not self._take(update["update_id"]):
                continue
            try:
                self.handle(update)
            except Exception:  # one command's bug must not stop the others
                log.exception("telegram: update %s could not be handled", update["update_id"])
        return 0.0

    def _hold(self) -> bool:
        """Hold (take or renew) the lease; False while another live replica holds it."""
        now = self.clock()
        with self.ledger.transaction():
            lease = self.ledger.get(LEASE_KEY)
            if isinstance(lease, dict) and lease.get("worker") != self.worker and lease.get("until", 0) > now:
                held = False
            else:
                self.ledger.put(LEASE_KEY, {"worker": self.worker, "until": now + LEASE_FOR})
                held = True
        if held != self.holding:
            log.info("telegram commands: %s", "this remediator reads them" if held else
                     f"{lease.get('worker')} reads them; this one waits")
            self.holding = held
        return held

    def _take(self, update_id: int) -> bool:
        """Record the update as taken, before acting on it; False when it was (or when the lease moved on)."""
        with self.ledger.transaction():
            lease = self.ledger.get(LEASE_KEY)
            if not isinstance(lease, dict) or lease.get("worker") != self.worker:
                return False
            last = self.ledger.get(OFFSET_KEY)
            if isinstance(last, int) and update_id <= last:
                return False
            self.ledger.put(OFFSET_KEY, update_id)
            return True

    def stop(self) -> None:
        super().stop()
        if self.holding:            # hand the lease on at once rather than after LEASE_FOR
            with self.ledger.transaction():
                lease = self.ledger.get(LEASE_KEY)
                if isinstance(lease, dict) and lease.get("worker") == self.worker:
                    self.ledger.put(LEASE_KEY, None)
