"""Business Associate Agreements: the released texts, the owner's e-signature with
Perpetua's countersignature, and the executed PDF kept encrypted.

This package guards the one door to PHI that is not technical: until an owner of
the practice has signed the current agreement, the database refuses PHI
(`perpetua.guard_phi_write`). A signature row, written only by an owner under
row-level security, is what creates the execution that opens that gate.

  agreements.py  released versions of the text and their SHA-256
  pdf.py         (pure) the executed agreement as a PDF with a signature page
  documents.py   encrypted document store under <data-dir>/documents
  service.py     status, signing, download
  errors.py      the refusals, each with a stable `code`
"""
