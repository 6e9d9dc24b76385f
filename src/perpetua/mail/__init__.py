"""The email outbox: every message the service sends is queued as a row, delivered
by a background job (SMTP with STARTTLS, or a local mail folder), retried, and
marked failed where the console shows it, never dropped silently."""
