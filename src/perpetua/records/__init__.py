"""Patients, providers, appointments, coverage and calls: the services over the
database's phi_api functions. Fields are encrypted and blind-indexed here on the way
in and decrypted on the way out, only after the transaction holding the audit event
has committed."""
