"""From a job's chunks to the client: the chunk hub, ordered reading, watching, SSE."""
