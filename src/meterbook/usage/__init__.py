"""Usage events: ingestion exactly once, and their effects on credits and features."""
