"""Refusals of the BAA flow. Each carries a stable `code` that the API returns and
the console turns into a sentence; none echoes what the caller typed."""

from __future__ import annotations

from perpetua.errors import Forbidden, InvalidInput, NotFound, PerpetuaError


class OwnerSignatureRequired(Forbidden):
    """Only an owner binds the practice; managers and others may read the text."""

    code = "baa_owner_required"
    title = "Only an owner of the practice can sign the Business Associate Agreement"


class ConsentRequired(InvalidInput):
    code = "baa_consent_required"
    title = "Tick the box to agree to the Business Associate Agreement"


class SignerDetailsInvalid(InvalidInput):
    code = "baa_signer_invalid"
    title = "Type your full name and your title (2 to 200 characters each)"


class AgreementVersionStale(PerpetuaError):
    """The text the signer reviewed is not the current one; sign what was shown."""

    code = "baa_version_stale"
    status = 409
    title = "The agreement changed after you opened it; review it again and sign"


class ExecutedAgreementNotFound(NotFound):
    code = "baa_document_not_found"
    title = "There is no executed agreement here that you may download"


class AgreementTerminated(PerpetuaError):
    """A terminated practice holds no PHI again, so it signs nothing again."""

    code = "baa_terminated"
    status = 409
    title = "This practice terminated its Business Associate Agreement"
