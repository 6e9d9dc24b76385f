"""The executed agreement as a PDF: the full released text, then a signature page
with both signatures and the facts that make them verifiable (who, when, from
which address and software, which version, which digest).

Pure: it takes values and returns bytes, in memory only, so the plaintext PDF
never touches the disk before it is encrypted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from perpetua.contracts.agreements import Agreement


@dataclass(frozen=True)
class SignaturePage:
    practice_name: str
    signer_name: str
    signer_title: str
    signer_ip: str | None
    signer_user_agent: str | None
    signed_at: dt.datetime
    countersigner: str
    countersigned_at: dt.datetime


def _latin1(value: str) -> str:
    # Limitation: the PDF's built-in fonts cover Latin-1 only; other characters
    # in a typed name are shown as "?". The database keeps the exact name.
    return value.encode("latin-1", "replace").decode("latin-1")


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines(pdf: FPDF, height: float, text: str) -> None:
    """A wrapped block that leaves the cursor at the left margin, below it."""
    pdf.multi_cell(0, height, _latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _body(pdf: FPDF, text: str) -> None:
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            pdf.set_font("Helvetica", "", 10)
            _lines(pdf, 5, " ".join(paragraph))
            pdf.ln(2)
            paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            pdf.set_font("Helvetica", "B", 16 if level == 1 else 12)
            _lines(pdf, 8, stripped.lstrip("# "))
            pdf.ln(1)
        elif stripped:
            paragraph.append(stripped)
        else:
            flush()
    flush()


def _row(pdf: FPDF, label: str, value: str) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(45, 6, label)
    pdf.set_font("Helvetica", "", 10)
    _lines(pdf, 6, value)


def render(agreement: Agreement, page: SignaturePage) -> bytes:
    """The executed agreement, ready to encrypt and store."""
    pdf = FPDF(format="Letter")
    pdf.set_title(f"Business Associate Agreement {agreement.version}")
    pdf.set_author("Perpetua")
    pdf.set_creation_date(page.countersigned_at)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _body(pdf, agreement.text)

    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    _lines(pdf, 8, "Signature page")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    _lines(
        pdf,
        5,
        "The parties below executed the Business Associate Agreement whose text "
        "precedes this page, identified by its version and SHA-256 digest.",
    )
    pdf.ln(3)
    _row(pdf, "Version", agreement.version)
    _row(pdf, "Text SHA-256", agreement.sha256)
    pdf.ln(4)

    pdf.set_font("Helvetica", "B", 12)
    _lines(pdf, 7, "For the Practice (covered entity)")
    _row(pdf, "Practice", page.practice_name)
    _row(pdf, "Signed by", page.signer_name)
    _row(pdf, "Title", page.signer_title)
    _row(pdf, "Signed at", _when(page.signed_at))
    _row(pdf, "From address", page.signer_ip or "not available")
    _row(pdf, "Software", page.signer_user_agent or "not available")
    _row(
        pdf,
        "Consent",
        "The signer typed the name above and confirmed agreement to this text.",
    )
    pdf.ln(4)

    pdf.set_font("Helvetica", "B", 12)
    _lines(pdf, 7, "For Perpetua (business associate)")
    _row(pdf, "Countersigned by", page.countersigner)
    _row(pdf, "Countersigned at", _when(page.countersigned_at))
    return bytes(pdf.output())
