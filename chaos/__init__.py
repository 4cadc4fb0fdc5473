"""The chaos soak (`make chaos`, `python -m chaos.soak`)."""
