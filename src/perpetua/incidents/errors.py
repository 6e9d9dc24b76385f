"""Refusals of alert triage and incident handling. Each carries a stable `code`
for the API and a sentence for the console; none echoes what the caller typed."""

from __future__ import annotations

from perpetua.errors import Forbidden, InvalidInput, NotFound, PerpetuaError


class AlertNotFound(NotFound):
    code = "alert_not_found"
    title = "There is no alert here that you may see"


class IncidentNotFound(NotFound):
    code = "incident_not_found"
    title = "There is no incident here that you may see"


class AlertClosed(PerpetuaError):
    """A dismissed or escalated alert keeps its decision."""

    code = "alert_closed"
    status = 409
    title = "This alert has already been dismissed or escalated"


class IncidentConflict(PerpetuaError):
    code = "incident_conflict"
    status = 409
    title = "The incident cannot take this step in its current state"


class IncidentsForManagers(Forbidden):
    # Incidents hold the practice's breach analysis: only its owners and managers
    # (and Perpetua's staff, without PHI) work on them.
    code = "incidents_for_managers"
    title = "Only the practice's owners and managers handle alerts and incidents"


class StaffOnly(Forbidden):
    code = "staff_only"
    title = "This queue is for Perpetua's staff"


class AssessmentIncomplete(InvalidInput):
    code = "assessment_incomplete"
    title = "Answer all four factors of the risk assessment and choose a conclusion"


class IncidentInputInvalid(InvalidInput):
    code = "incident_input_invalid"
    title = "Some incident details are not valid"
