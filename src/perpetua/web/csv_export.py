"""CSV downloads for the console and the API alike, so both give the same file.

Every text cell is made inert for spreadsheets: a cell starting with = + - @ (or
a tab or carriage return) would otherwise run as a formula when opened.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.responses import Response

from perpetua.audit.viewer import EventView
from perpetua.records.models import AccessEvent, Appointment

SCHEDULE_COLUMNS = (
    "appointment_id",
    "starts_at",
    "ends_at",
    "provider_id",
    "patient_id",
    "patient_name",
    "status",
    "reason",
)


def spreadsheet_safe(value: str | None) -> str:
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [
                spreadsheet_safe(v) if isinstance(v, str) else ("" if v is None else v)
                for v in row
            ]
        )
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def schedule_rows(appointments: Iterable[Appointment]) -> list[list[Any]]:
    return [
        [
            a.id,
            a.starts_at.isoformat(),
            a.ends_at.isoformat(),
            a.provider_id,
            a.patient_id,
            a.patient_name,
            a.status,
            a.reason,
        ]
        for a in appointments
    ]


AUDIT_EVENT_COLUMNS = (
    "occurred_at",
    "actor_name",
    "actor_id",
    "actor_kind",
    "actor_role",
    "ip",
    "action",
    "resource_type",
    "resource_ids",
    "patient_ids",
    "patient_names",
    "purpose_of_use",
    "reason",
    "outcome",
    "row_count",
    "request_id",
    "event_id",
    "leaf_index",
)


def audit_event_rows(events: Iterable[EventView]) -> list[list[Any]]:
    return [
        [
            e.occurred_at.isoformat(),
            e.actor_name,
            e.actor_id,
            e.actor_kind,
            e.actor_role,
            e.ip,
            e.action,
            e.resource_type,
            " ".join(str(r) for r in e.resource_ids),
            " ".join(str(p.id) for p in e.patients),
            "; ".join(p.name or "" for p in e.patients),
            e.purpose_of_use,
            e.reason,
            e.outcome,
            e.row_count,
            e.request_id,
            e.id,
            e.leaf_index,
        ]
        for e in events
    ]


ACCESS_REPORT_COLUMNS = (
    "occurred_at",
    "actor_name",
    "actor_id",
    "actor_kind",
    "actor_role",
    "action",
    "resource_type",
    "purpose_of_use",
    "reason",
    "outcome",
    "ip",
    "request_id",
)


def access_report_rows(
    events: Iterable[AccessEvent], names: Mapping[Any, str]
) -> list[list[Any]]:
    return [
        [
            e.occurred_at.isoformat(),
            names.get(e.actor_id),
            e.actor_id,
            e.actor_kind,
            e.actor_role,
            e.action,
            e.resource_type,
            e.purpose_of_use,
            e.reason,
            e.outcome,
            e.client_ip,
            e.request_id,
        ]
        for e in events
    ]
