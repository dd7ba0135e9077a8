"""The job queue: jobs, their attempts, the re-queue decision, and the one adapter to arq."""
