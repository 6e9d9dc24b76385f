"""CSV downloads for the console and the API alike, so both give the same file.

Every text cell is made inert for spreadsheets: a cell starting with = + - @ (or
a tab or carriage return) would otherwise run as a formula when opened.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.responses import Response

from perpetua.records.models import Appointment

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
