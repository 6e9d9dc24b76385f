"""Refusals raised while proving who someone is: password policy, second factors and
security keys.

Each error carries a stable machine-readable `code` and an HTTP `status`, inherited
from the project-wide `PerpetuaError`, so the one handler that maps errors to HTTP
covers these too. No message ever contains the password, the one-time code, the
recovery code or key material that was offered.

    PerpetuaError
    ├── InvalidCredentials (shared; unknown email and wrong password alike)
    ├── PasswordPolicyViolation
    │   ├── PasswordTooShort
    │   ├── PasswordTooLong
    │   ├── PasswordTooCommon
    │   ├── PasswordMatchesEmail
    │   └── PasswordMatchesName
    ├── TotpCodeInvalid
    │   └── TotpCodeReplayed
    ├── RecoveryCodeMalformed
    ├── RecoveryCodeInvalid
    ├── WebAuthnVerificationFailed
    │   └── SignCountRegression
    ├── TooManyAttempts (carries retry_after seconds)
    ├── SecondFactorRequired (password accepted; a second factor must follow)
    ├── MfaEnrolmentRequired (only enrolment is reachable until a factor exists)
    ├── StaffMfaNotEnrolled
    ├── ReauthenticationRequired
    ├── FreshSecondFactorRequired
    ├── LastOwner
    ├── LinkInvalid (invitation, password reset or enrolment link)
    ├── AlreadyMember
    ├── ApiTokenNotAllowed
    └── ScopeMissing
"""

from __future__ import annotations

from perpetua.errors import InvalidCredentials, PerpetuaError

__all__ = [
    "AlreadyMember",
    "ApiTokenNotAllowed",
    "FreshSecondFactorRequired",
    "InvalidCredentials",
    "LastOwner",
    "LinkInvalid",
    "MfaEnrolmentRequired",
    "PasswordMatchesEmail",
    "PasswordMatchesName",
    "PasswordPolicyViolation",
    "PasswordTooCommon",
    "PasswordTooLong",
    "PasswordTooShort",
    "ReauthenticationRequired",
    "RecoveryCodeInvalid",
    "RecoveryCodeMalformed",
    "ScopeMissing",
    "SecondFactorRequired",
    "SignCountRegression",
    "StaffMfaNotEnrolled",
    "TooManyAttempts",
    "TotpCodeInvalid",
    "TotpCodeReplayed",
    "WebAuthnVerificationFailed",
]


class PasswordPolicyViolation(PerpetuaError):
    """A chosen password is refused; subclasses name the reason."""

    code = "password_policy_violation"
    status = 422
    title = "Choose a different password"


class PasswordTooShort(PasswordPolicyViolation):
    code = "password_too_short"

    def __init__(self, min_length: int) -> None:
        self.min_length = min_length
        self.title = f"Use at least {min_length} characters"
        super().__init__()


class PasswordTooLong(PasswordPolicyViolation):
    code = "password_too_long"

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.title = f"Use at most {max_length} characters"
        super().__init__()


class PasswordTooCommon(PasswordPolicyViolation):
    # Attackers try these first, whatever their length or mix of symbols.
    code = "password_too_common"
    title = "This password is too common; choose one that others are unlikely to use"


class PasswordMatchesEmail(PasswordPolicyViolation):
    code = "password_matches_email"
    title = "The password must not be your email address"


class PasswordMatchesName(PasswordPolicyViolation):
    code = "password_matches_name"
    title = "The password must not be your name"


class TotpCodeInvalid(PerpetuaError):
    code = "totp_invalid"
    status = 401
    title = "The code from your authenticator app is not valid"


class TotpCodeReplayed(TotpCodeInvalid):
    # A code that already opened a session must not open a second one, even within
    # its 30 seconds: someone may have read it over the user's shoulder.
    code = "totp_replayed"
    title = "This code has already been used; wait for the next one"


class RecoveryCodeMalformed(PerpetuaError):
    code = "recovery_code_malformed"
    status = 422
    title = "A recovery code has ten letters and digits, like abcde-12345"


class WebAuthnVerificationFailed(PerpetuaError):
    # The detail says which check failed, for operators; the title stays vague on
    # purpose, since the browser's user cannot act on the difference.
    code = "webauthn_verification_failed"
    status = 401
    title = "The security key could not be verified"


class SignCountRegression(WebAuthnVerificationFailed):
    # A correctly signed assertion whose counter went backwards suggests the private
    # key was copied to a second device.
    code = "webauthn_sign_count_regression"
    title = "This security key reported an unexpected state; contact your administrator"


class RecoveryCodeInvalid(PerpetuaError):
    code = "recovery_code_invalid"
    status = 401
    title = "This recovery code is not valid or has already been used"


class TooManyAttempts(PerpetuaError):
    # Said the same way whether or not the account exists, so that the lock itself
    # does not reveal which emails have accounts.
    code = "too_many_attempts"
    status = 429
    title = "Too many attempts; wait before trying again"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(f"Try again in {self.retry_after} seconds")


class SecondFactorRequired(PerpetuaError):
    code = "mfa_required"
    status = 401
    title = "Confirm it is you with your second factor"
    console_redirect = "/signin/mfa"


class MfaEnrolmentRequired(PerpetuaError):
    code = "mfa_enrolment_required"
    status = 403
    title = "Set up a second factor before you continue"
    console_redirect = "/security/mfa"


class StaffMfaNotEnrolled(PerpetuaError):
    # Perpetua's own staff reach many practices' settings: without a second factor
    # they get no session at all, only the enrolment link an operator issues.
    code = "staff_mfa_not_enrolled"
    status = 403
    title = "Staff accounts sign in only after enrolling a second factor"


class ReauthenticationRequired(PerpetuaError):
    code = "reauthentication_required"
    status = 403
    title = "Confirm your password to continue"
    console_redirect = "/security/confirm"


class FreshSecondFactorRequired(PerpetuaError):
    code = "fresh_second_factor_required"
    status = 403
    title = "Confirm with your second factor to continue"
    console_redirect = "/security/confirm"


class LastOwner(PerpetuaError):
    code = "last_owner"
    status = 409
    title = "A practice keeps at least one owner"


class LinkInvalid(PerpetuaError):
    # Expired, used, revoked or never issued: one answer for all, since the
    # difference would help only someone guessing links.
    code = "link_invalid"
    status = 410
    title = "This link is no longer valid; ask for a new one"


class AlreadyMember(PerpetuaError):
    code = "already_member"
    status = 409
    title = "This account already belongs to the practice"


class ApiTokenNotAllowed(PerpetuaError):
    code = "api_token_not_allowed"
    status = 403
    title = "API tokens cannot use this endpoint"


class ScopeMissing(PerpetuaError):
    code = "scope_missing"
    status = 403
    title = "The API token lacks the scope this endpoint needs"
