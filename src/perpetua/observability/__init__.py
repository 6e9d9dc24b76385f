"""What operators see: structured logs with a request id, and health checks. Logs
are for running the service; they never hold PHI, secrets, tokens or emails."""
