"""botwatch: monitoring and automatic recovery for trading bots."""

__version__ = "0.1.0"
