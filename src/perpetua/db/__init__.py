"""PostgreSQL: the embedded server, the owner/service role split, migrations and the
connection pools. Knows nothing of the domains built on top of it."""
