"""paperbot: the demo paper-trading bot botwatch monitors (standalone: imports nothing of botwatch)."""
