"""The chaos soak (`make chaos`, `chaos/soak.py`)."""
