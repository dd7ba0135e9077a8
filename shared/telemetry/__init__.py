"""What the processes tell operators: logs, Prometheus metrics, request statistics."""
