"""The MemStack ingest worker: an RQ worker on `memstack:ingest` with its own metrics."""
