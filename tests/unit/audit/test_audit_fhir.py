"""Audit events leave as FHIR R4 AuditEvent resources shaped after IHE BALP: the
RESTful interaction, C/R/U/D/E action, outcome code, purpose of use with the
stated reason, the requesting user with address, and each patient as an entity
in the Patient role."""

import json
from datetime import UTC, datetime

from perpetua.audit.canonical import make_event_v2
from perpetua.audit.fhir import LOG_INDEX_EXTENSION, audit_event_resource

PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"
PATIENT = "9f1e2d3c-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
EVENT = "7d0c9f5e-3a55-4a8e-9d43-0d1c6f0a4b21"
USER = "2c1f7e0a-9b8d-4c3e-8f6a-5d4c3b2a1f0e"
SOURCE = f"perpetua.example/practice/{PRACTICE}"


def event(**overrides: object):
    fields: dict[str, object] = {
        "event_id": EVENT,
        "practice_id": PRACTICE,
        "index": 41,
        "time": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        "actor_kind": "user",
        "actor_id": USER,
        "actor_role": "front_desk",
        "action": "view",
        "resource_type": "patient",
        "resource_ids": [PATIENT],
        "patient_ids": [PATIENT],
        "purpose_of_use": "TREAT",
        "ip": "203.0.113.7",
        "request_id": "req-1",
        "outcome": "success",
        "row_count": 1,
    }
    fields.update(overrides)
    return make_event_v2(**fields)  # type: ignore[arg-type]


def test_patient_read_maps_to_a_balp_rest_read() -> None:
    resource = audit_event_resource(event(), source=SOURCE)
    assert resource["resourceType"] == "AuditEvent"
    assert resource["id"] == EVENT
    assert resource["type"]["code"] == "rest"
    assert resource["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}
    ]
    assert resource["action"] == "R"
    assert resource["outcome"] == "0"
    assert resource["recorded"] == "2026-12-03T09:00:00.000000Z"
    assert resource["extension"] == [{"url": LOG_INDEX_EXTENSION, "valueInteger": 41}]
    assert resource["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert resource["source"]["observer"]["display"] == SOURCE

    (agent,) = resource["agent"]
    assert agent["requestor"] is True
    assert agent["who"]["identifier"]["value"] == USER
    assert agent["network"] == {"address": "203.0.113.7", "type": "2"}
    assert agent["role"] == [{"text": "front_desk"}]

    patients = [e for e in resource["entity"] if e.get("role", {}).get("code") == "1"]
    assert [e["what"]["reference"] for e in patients] == [f"Patient/{PATIENT}"]
    json.dumps(resource)


def test_refused_export_with_a_reason_maps_to_dicom_export_and_minor_failure() -> None:
    resource = audit_event_resource(
        event(
            action="export",
            resource_type="audit_log",
            resource_ids=[],
            patient_ids=[],
            outcome="denied",
            purpose_of_use="BTG",
            reason="Patient unconscious in the waiting room",
        ),
        source=SOURCE,
    )
    assert resource["subtype"][0]["code"] == "110106"
    assert resource["action"] == "R"
    assert resource["outcome"] == "4"
    assert resource["purposeOfEvent"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "BTG",
                }
            ],
            "text": "Patient unconscious in the waiting room",
        }
    ]
    assert all(e.get("role", {}).get("code") != "1" for e in resource["entity"])


def test_each_action_has_its_crude_code() -> None:
    expected = {"create": "C", "update": "U", "delete": "D", "search": "E"}
    for action, code in expected.items():
        assert (
            audit_event_resource(event(action=action), source=SOURCE)["action"] == code
        ), action
