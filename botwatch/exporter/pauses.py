"""What holds each bot, as the remediator's ledger says (`GET /pauses`), polled every few seconds for
`tradingbot_paused`. A remediator that can't be reached leaves the last answer standing (a pause does not
end because a poll failed); the exporter's own checks never wait on it."""

from __future__ import annotations

import logging

from botwatch.core.intent_client import IntentClient, IntentError
from botwatch.core.loop import ServiceLoop
from botwatch.exporter.monitor import Monitor

log = logging.getLogger(__name__)

EVERY = 5.0


class PauseFeed(ServiceLoop):
    name = "pauses"

    def __init__(self, monitor: Monitor, client: IntentClient, every: float = EVERY):
        super().__init__()
        self.monitor, self.client, self.every = monitor, client, every

    def step(self) -> float:
        try:
            pauses = self.client.pauses()
        except IntentError as err:
            self.trouble(f"can't read the pauses from the remediator ({err}): tradingbot_paused keeps its last "
                         "values", "pauses")
            return self.every
        paused: dict[str, str] = {}
        for pause in pauses:
            for bot in pause.get("bots", []):
                paused.setdefault(bot, pause.get("reason"))
        self.monitor.paused = paused
        return self.every
