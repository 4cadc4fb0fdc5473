"""The ground floor both services stand on: the config, the checks (liveness, trade files, P&L, logs),
the thresholds (the mixin), units and serving. It imports no service: nothing here knows the exporter,
the remediator or the command line."""
