"""Audit events as FHIR R4 AuditEvent resources, shaped after IHE BALP.

This module guards the meaning of an audit event when it leaves Perpetua for
another system (a SIEM, a health information exchange, an auditor's FHIR tool).
It is a pure mapping from one canonical event (``canonical``) to one FHIR R4
``AuditEvent`` resource, following the patterns of the IHE Basic Audit Log
Patterns (BALP) profile for RESTful activity on patient data:

- ``type`` is the FHIR ``rest`` event type, ``subtype`` the RESTful interaction
  (``read``, ``search-type``, ``create``, ``update``, ``delete``), or DICOM
  ``110106`` (Export) for exports;
- ``action`` is C/R/U/D/E, ``outcome`` ``0`` (success) or ``4`` (minor failure:
  refused or not found), ``purposeOfEvent`` the v3 ActReason purpose of use;
- the user is the requesting agent (with role and network address), Perpetua the
  observing source, each patient an entity with role Patient (the BALP "Patient"
  slice), each resource a domain-resource entity.

The tamper-evident log stays the canonical JSON Lines archive: this export is
for interoperability, not proof. Each resource names its log index so that it
can be matched with the archive.
"""

from __future__ import annotations

from typing import Any

from perpetua.audit.canonical import AuditEvent

__all__ = ["LOG_INDEX_EXTENSION", "audit_event_resource"]

# Our own extension: where the event sits in the practice's sealed log.
LOG_INDEX_EXTENSION = (
    "https://perpetua.example/fhir/StructureDefinition/audit-log-index"
)

_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"

# action -> (subtype, C/R/U/D/E)
_ACTIONS: dict[str, tuple[dict[str, str], str]] = {
    "view": ({"system": _INTERACTION, "code": "read"}, "R"),
    "playback": ({"system": _INTERACTION, "code": "read"}, "R"),
    "break_glass": ({"system": _INTERACTION, "code": "read"}, "R"),
    "search": ({"system": _INTERACTION, "code": "search-type"}, "E"),
    "api_call": ({"system": _INTERACTION, "code": "search-type"}, "E"),
    "create": ({"system": _INTERACTION, "code": "create"}, "C"),
    "update": ({"system": _INTERACTION, "code": "update"}, "U"),
    "delete": ({"system": _INTERACTION, "code": "delete"}, "D"),
    "export": ({"system": _DCM, "code": "110106", "display": "Export"}, "R"),
}

_OUTCOMES = {"success": "0", "denied": "4", "not_found": "4"}

_FHIR_TYPES = {
    "patient": "Patient",
    "appointment": "Appointment",
    "coverage": "Coverage",
    "call": "Communication",
    "clinical_document": "DocumentReference",
    "audit_log": "AuditEvent",
}


def _entity_type(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        "code": code,
        "display": display,
    }


def _agent(event: AuditEvent) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "who": {
            "identifier": {
                "system": f"urn:perpetua:actor:{event['actor_kind']}",
                "value": event["actor_id"] or "unknown",
            }
        },
        "requestor": True,
    }
    if event["actor_role"]:
        agent["role"] = [{"text": event["actor_role"]}]
    if event["ip"]:
        # Network access point type 2: an IP address.
        agent["network"] = {"address": event["ip"], "type": "2"}
    if event["user_agent"]:
        agent["name"] = event["user_agent"]
    return agent


def audit_event_resource(event: AuditEvent, *, source: str) -> dict[str, Any]:
    """One FHIR R4 AuditEvent for ``event``; ``source`` names the log (origin)."""
    subtype, action = _ACTIONS.get(
        event["action"], ({"system": _INTERACTION, "code": event["action"]}, "E")
    )
    resource_type = _FHIR_TYPES.get(event["resource_type"], event["resource_type"])
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{patient}"},
            "type": _entity_type("1", "Person"),
            "role": {
                "system": "http://terminology.hl7.org/CodeSystem/object-role",
                "code": "1",
                "display": "Patient",
            },
        }
        for patient in event["patient_ids"]
    ]
    entities += [
        {
            "what": {"reference": f"{resource_type}/{resource}"},
            "type": _entity_type("2", "System Object"),
        }
        for resource in event["resource_ids"]
    ]
    if event.get("request_id"):
        entities.append(
            {
                "what": {"identifier": {"value": event["request_id"]}},
                "type": _entity_type("4", "Other"),
                "description": "request id",
            }
        )

    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "extension": [{"url": LOG_INDEX_EXTENSION, "valueInteger": event["index"]}],
        "type": _REST,
        "subtype": [subtype],
        "action": action,
        "recorded": event["time"],
        "outcome": _OUTCOMES.get(event["outcome"], "8"),
        "agent": [_agent(event)],
        "source": {
            "observer": {"display": source},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }
    if "id" in event:
        resource["id"] = event["id"]
    # The staff member's stated reason (a break-glass justification, ...) is
    # the text of the purpose, beside its code.
    purpose: dict[str, Any] = {}
    if event["purpose_of_use"]:
        purpose["coding"] = [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": event["purpose_of_use"],
            }
        ]
    if event["reason"]:
        purpose["text"] = event["reason"]
    if purpose:
        resource["purposeOfEvent"] = [purpose]
    return resource
