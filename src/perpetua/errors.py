"""Named domain errors shared by the services, the console and the API.

Every refusal in Perpetua is one of these: a condition with a stable machine-readable
`code` that the API returns in its problem details and the console turns into a human
sentence. The HTTP status lives here too, so that the mapping is made in one place.
Messages never carry PHI, secrets, tokens or email addresses.
"""

from __future__ import annotations


class PerpetuaError(Exception):
    """Base of every error that is safe to show to the caller."""

    code = "error"
    status = 400
    title = "Request refused"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class ConfigError(PerpetuaError):
    """The service was started with settings it refuses to run under."""

    code = "config_invalid"
    status = 500
    title = "Configuration refused"


class InvalidInput(PerpetuaError):
    code = "invalid_input"
    status = 422
    title = "Invalid input"


class NotAuthenticated(PerpetuaError):
    code = "not_authenticated"
    status = 401
    title = "Sign-in required"


class InvalidCredentials(PerpetuaError):
    # Deliberately the same for an unknown email and a wrong password, so the answer
    # never tells an attacker which accounts exist.
    code = "invalid_credentials"
    status = 401
    title = "Email or password is incorrect"


class SessionExpired(PerpetuaError):
    code = "session_expired"
    status = 401
    title = "Your session has ended; sign in again"


class CsrfFailed(PerpetuaError):
    code = "csrf_failed"
    status = 403
    title = "The form could not be verified; reload the page and try again"


class Forbidden(PerpetuaError):
    code = "forbidden"
    status = 403
    title = "Not permitted"


class PracticeReadOnly(PerpetuaError):
    code = "practice_read_only"
    status = 403
    title = (
        "The free trial has ended, so the practice is read-only. Nothing has been "
        "deleted; choose a plan to make changes again."
    )


class EmailTaken(PerpetuaError):
    code = "email_taken"
    status = 409
    title = "An account with this email already exists; sign in instead"


class NotFound(PerpetuaError):
    code = "not_found"
    status = 404
    title = "Not found"


class ServiceUnavailable(PerpetuaError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


class AuditUnavailable(PerpetuaError):
    """Fail closed: an access that cannot be recorded does not happen."""

    code = "audit_unavailable"
    status = 503
    title = "The access could not be recorded, so no data was returned"


class BaaNotSigned(PerpetuaError):
    code = "baa_not_signed"
    status = 403
    title = (
        "Patient data is locked until the practice's owner signs the Business "
        "Associate Agreement"
    )


class PracticeTerminated(PerpetuaError):
    """The practice ended its BAA: its PHI was destroyed and none is taken again."""

    code = "baa_terminated"
    status = 403
    title = (
        "This practice terminated its Business Associate Agreement; Perpetua holds "
        "no patient data for it"
    )


class NoValidClaims(PerpetuaError):
    code = "no_valid_claims"
    status = 403
    title = "The request carried no identity the database accepts"


class InvalidRange(PerpetuaError):
    code = "invalid_range"
    status = 422
    title = "The requested range is too long"


class StillReferenced(PerpetuaError):
    code = "still_referenced"
    status = 409
    title = "Other records still refer to this one; remove or move them first"
