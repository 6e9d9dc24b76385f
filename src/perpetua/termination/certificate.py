"""The certificate of destruction as a PDF: which practice, who terminated its
Business Associate Agreement and when, the export handed over, and every keystore
deletion certificate that made the practice's PHI unreadable (crypto-shredding).

Pure: values in, bytes out, in memory only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

KEPT = (
    "Kept for the retention period: the audit log and its signing key "
    "(audit_signing), so the log still verifies; the Business Associate "
    "Agreement records and their documents key (documents), which holds no PHI."
)


@dataclass(frozen=True)
class CertificateFacts:
    practice_id: str
    practice_name: str
    requested_by: str
    requested_at: dt.datetime
    destroyed_at: dt.datetime
    export_id: str
    export_sha256: str
    export_bytes: int
    export_kdf: str
    media_included: bool
    certificates: list[dict[str, Any]]


def _latin1(value: str) -> str:
    # The PDF's built-in fonts cover Latin-1 only; the database keeps exact text.
    return value.encode("latin-1", "replace").decode("latin-1")


def _when(moment: dt.datetime | str) -> str:
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines(pdf: FPDF, height: float, text: str) -> None:
    pdf.multi_cell(0, height, _latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _row(pdf: FPDF, label: str, value: str) -> None:
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(42, 5, label)
    pdf.set_font("Helvetica", "", 9)
    _lines(pdf, 5, value)


def render(facts: CertificateFacts) -> bytes:
    pdf = FPDF(format="Letter")
    pdf.set_title("Certificate of destruction")
    pdf.set_author("Perpetua")
    pdf.set_creation_date(facts.destroyed_at)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 16)
    _lines(pdf, 8, "Certificate of destruction of protected health information")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    _lines(
        pdf,
        5,
        "The Business Associate Agreement between the practice below and Perpetua "
        "was terminated by an owner of the practice. Perpetua handed the practice "
        "an encrypted export of its records, then destroyed the encryption keys "
        "of every class of the practice's PHI (crypto-shredding). The ciphertext "
        "that remains in the database and in backups can no longer be decrypted "
        "by anyone.",
    )
    pdf.ln(3)
    _row(pdf, "Practice", facts.practice_name)
    _row(pdf, "Practice id", facts.practice_id)
    _row(pdf, "Terminated by", facts.requested_by)
    _row(pdf, "Terminated at", _when(facts.requested_at))
    _row(pdf, "Keys destroyed at", _when(facts.destroyed_at))
    pdf.ln(3)

    pdf.set_font("Helvetica", "B", 12)
    _lines(pdf, 7, "Export handed to the practice")
    _row(pdf, "Export id", facts.export_id)
    _row(pdf, "Encrypted size", f"{facts.export_bytes} bytes")
    _row(pdf, "File SHA-256", facts.export_sha256)
    _row(
        pdf,
        "Key",
        "derived with scrypt from the owner's passphrase"
        if facts.export_kdf == "scrypt"
        else "random, shown once to the owner",
    )
    _row(
        pdf,
        "Call media",
        "included" if facts.media_included else "not included (call records only)",
    )
    pdf.ln(3)

    pdf.set_font("Helvetica", "B", 12)
    _lines(pdf, 7, "Keystore deletion certificates")
    for cert in facts.certificates:
        pdf.ln(1)
        bucket = cert["data_class"] + (f" {cert['period']}" if cert["period"] else "")
        _row(pdf, "Key class", bucket)
        _row(pdf, "Certificate id", str(cert["certificate_id"]))
        _row(pdf, "Versions", ", ".join(str(v) for v in cert["key_versions"]))
        _row(pdf, "Destroyed at", _when(cert["destroyed_at"]))
        _row(pdf, "KEK", str(cert["kek_id"]))
        _row(pdf, "Method", str(cert["method"]))
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 9)
    _lines(pdf, 5, KEPT)
    return bytes(pdf.output())
