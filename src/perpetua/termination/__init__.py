"""Terminating the Business Associate Agreement: the practice's export, the
destruction of its PHI by crypto-shredding, and the certificate of destruction.

Guards the end of the business associate relationship: PHI leaves Perpetua only
as an archive the practice alone can open, then becomes unreadable everywhere
(database, backups) because its keys are gone; the audit log and the BAA records
stay, readable and verifiable, for the retention period.

  archive.py      (pure) the encrypted export format, and opening it
  export.py       everything the practice holds, read through the records service
  certificate.py  (pure) the certificate of destruction as a PDF
  state.py        the termination record every member may read
  service.py      the termination itself, step by step
  errors.py       the refusals, each with a stable `code`
"""
