"""Counting the front end's requests: metrics, the shared rollup, response statuses."""
