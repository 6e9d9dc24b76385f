"""Perpetua: a front office for medical practices whose HIPAA safeguards are enforced
by the system itself: tenancy and roles in PostgreSQL, audit in the same transaction
as every PHI read, and encryption under per-practice keys."""

__version__ = "0.1.0"
