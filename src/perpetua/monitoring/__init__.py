"""Monitoring: detectors over the audit log and the security history that raise
alerts to a practice's owners and managers, and the simulated month they are
measured against.

The detectors themselves are SQL (migrations 0061-0063, schema `monitor`): they
run inside the database as the owner under system claims, so the service role
never gains a privilege on PHI tables or on the audit log. This package calls them
on a schedule, turns what they find into alerts and emails, and sets thresholds and
blind-index tags.
"""
