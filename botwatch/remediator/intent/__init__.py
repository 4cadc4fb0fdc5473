"""Operator intent: pauses, maintenance windows and deliberate stops — what botwatch must not undo."""
