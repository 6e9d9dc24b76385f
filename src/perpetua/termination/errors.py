"""Refusals of the termination flow, each with a stable `code`; none echoes what
the caller typed (a passphrase above all)."""

from __future__ import annotations

from perpetua.errors import Forbidden, InvalidInput, NotFound, PerpetuaError


class TerminationOwnerRequired(Forbidden):
    code = "termination_owner_required"
    title = "Only an owner of the practice can terminate the agreement"


class TerminationNotConfirmed(InvalidInput):
    code = "termination_not_confirmed"
    title = "Type the practice's name exactly as shown to confirm the termination"


class ExportPassphraseInvalid(InvalidInput):
    code = "export_passphrase_invalid"
    title = (
        "The export passphrase needs at least 12 characters, or leave it empty "
        "to receive a random key"
    )


class AlreadyTerminated(PerpetuaError):
    code = "baa_already_terminated"
    status = 409
    title = "The agreement is already terminated and the practice's PHI destroyed"


class ExportNotAvailable(NotFound):
    code = "termination_export_not_found"
    title = "There is no export here that you may download"


class TerminationIncomplete(PerpetuaError):
    """The export could not be made whole; no key was destroyed. Retrying resumes."""

    code = "termination_incomplete"
    status = 503
    title = (
        "The export could not be completed, so nothing was destroyed; the "
        "practice stays closed to new PHI. Try again to finish the termination"
    )
