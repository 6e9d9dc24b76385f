"""Breach handling after an alert exists: triage of alerts, incidents with their
discovery time, four-factor risk assessment, affected patients computed from the
audit log, the notice owed to the practice and the notification clocks."""
