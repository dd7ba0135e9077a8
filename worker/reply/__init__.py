"""Answering one request: a CLI run's stream to chunks, stop sequences, metering, booking."""
