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


def test_free_ports_are_all_different_and_take_the_preferred_one_when_free():
    """`botwatch up --ha` once gave both Prometheus servers one port (two one-at-a-time picks of port 0 got
    the same free port back): the HA test found neither listening."""
    import socket

    from botwatch.core.serve import free_ports
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    taken = busy.getsockname()[1]
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        ports = free_ports({"a": free, "b": taken, **{f"n{i}": None for i in range(50)}})
    finally:
        busy.close()
    assert ports["a"] == free and ports["b"] != taken
    assert len(set(ports.values())) == len(ports) == 52
