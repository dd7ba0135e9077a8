"""The job queue: jobs, their attempts, and the one adapter to arq."""
