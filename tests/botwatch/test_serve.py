"""Serving: a SIGTERM that lands while waitress handles a socket event still stops the server."""

import pytest
from waitress import wasyncore

from botwatch.core.serve import _Stop


class Channel:
    """A dispatcher whose read event is where the signal handler's exception surfaces."""

    def __init__(self):
        self.errors = 0

    def handle_read_event(self):
        raise _Stop("SIGTERM")

    def handle_error(self):          # what waitress does with an exception it swallows
        self.errors += 1


def test_the_stop_is_not_swallowed_by_waitress_event_dispatch():
    """The handler's exception was an Exception: raised inside a channel's read, waitress logged it as
    "uncaptured python exception" and served on (the exporter ignored SIGTERM under load)."""
    channel = Channel()
    with pytest.raises(_Stop):
        wasyncore.read(channel)
    assert channel.errors == 0
