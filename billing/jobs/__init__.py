"""The job definitions (steps, order, parallelism, batching) and the in-process runner."""
