"""Message batches: the batch as the API shows it, its store in Redis, its dispatch."""
