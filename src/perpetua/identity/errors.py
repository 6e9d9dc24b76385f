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
    └── WebAuthnVerificationFailed
        └── SignCountRegression
"""

from __future__ import annotations

from perpetua.errors import InvalidCredentials, PerpetuaError

__all__ = [
    "InvalidCredentials",
    "PasswordMatchesEmail",
    "PasswordMatchesName",
    "PasswordPolicyViolation",
    "PasswordTooCommon",
    "PasswordTooLong",
    "PasswordTooShort",
    "RecoveryCodeMalformed",
    "SignCountRegression",
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
