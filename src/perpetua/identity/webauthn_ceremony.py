"""Guards sign-in with security keys and passkeys (WebAuthn): the two ceremonies,
registration and authentication, as thin typed calls over the `webauthn` library.

Each ceremony has two halves. The first returns options for the browser and a
random challenge that the caller keeps server-side (in the session), bound to this
one attempt. The second checks the browser's response against that challenge, the
expected origin and the relying party id, then returns only what the caller stores.
A challenge must be discarded after one verification, successful or not.

Every failure of the library, whatever exception it raises on hostile input, comes
out as `WebAuthnVerificationFailed`; a correctly signed assertion whose counter went
backwards comes out as its subclass `SignCountRegression`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from perpetua.identity.errors import SignCountRegression, WebAuthnVerificationFailed

__all__ = [
    "CeremonyOptions",
    "KnownCredential",
    "RegisteredCredential",
    "VerifiedAssertion",
    "authentication_options",
    "credential_id_of",
    "registration_options",
    "verify_authentication",
    "verify_registration",
]

# The browser's JSON form of a PublicKeyCredential, as posted by the page.
CredentialJSON = str | dict[str, Any]

# How long the browser lets the user look for a key; a hint, not an enforcement.
_TIMEOUT_MS = 120_000

# ES256 covers security keys and platform passkeys, EdDSA newer keys, RS256 Windows
# Hello; nothing weaker is offered.
_ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]


@dataclass(frozen=True)
class KnownCredential:
    """A credential already stored for a user, as the options need to name it."""

    credential_id: bytes
    transports: tuple[str, ...] = ()


@dataclass(frozen=True)
class CeremonyOptions:
    """Options for the browser, and the challenge the server keeps until the reply."""

    options_json: str
    challenge: bytes


@dataclass(frozen=True)
class RegisteredCredential:
    """What to store for a newly registered credential."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    user_verified: bool
    backed_up: bool


@dataclass(frozen=True)
class VerifiedAssertion:
    """The outcome of a verified sign-in; the caller stores `new_sign_count`."""

    credential_id: bytes
    new_sign_count: int
    user_verified: bool
    backed_up: bool
    user_handle: bytes | None


def _descriptors(
    credentials: Sequence[KnownCredential],
) -> list[PublicKeyCredentialDescriptor]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=credential.credential_id,
            transports=[
                AuthenticatorTransport(name)
                for name in credential.transports
                if name in known
            ]
            or None,
        )
        for credential in credentials
    ]


def registration_options(
    *,
    rp_id: str,
    rp_name: str,
    user_id: bytes,
    user_name: str,
    user_display_name: str | None = None,
    existing_credentials: Sequence[KnownCredential] = (),
) -> CeremonyOptions:
    """Start registering a new credential for the user `user_id`.

    `user_id` must be an opaque random handle, not an email or a database id that
    reveals anything: authenticators store it and may show it to anyone holding them.
    """
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_id=user_id,
        user_name=user_name,
        user_display_name=user_display_name,
        timeout=_TIMEOUT_MS,
        # Attestation would identify the make of the key; we do not restrict makes,
        # so asking for it would only collect data we have no use for.
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        # Naming the user's existing keys stops the same key being registered twice.
        exclude_credentials=_descriptors(existing_credentials),
        supported_pub_key_algs=_ALGORITHMS,
    )
    return CeremonyOptions(
        options_json=options_to_json(options), challenge=options.challenge
    )


def verify_registration(
    *,
    response: CredentialJSON,
    expected_challenge: bytes,
    expected_origin: str,
    expected_rp_id: str,
    require_user_verification: bool = False,
) -> RegisteredCredential:
    """Check the browser's reply to `registration_options` and return what to store."""
    try:
        credential = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origin,
            require_user_verification=require_user_verification,
            supported_pub_key_algs=_ALGORITHMS,
        )
    # The library raises its own errors and, on some malformed input, plain ones;
    # any of them means the response was not proven, so all are refused alike.
    except Exception as exc:
        raise WebAuthnVerificationFailed(str(exc)) from exc

    transports = credential.response.transports or []
    return RegisteredCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=tuple(transport.value for transport in transports),
        aaguid=verified.aaguid,
        user_verified=verified.user_verified,
        backed_up=verified.credential_backed_up,
    )


def authentication_options(
    *, rp_id: str, allowed_credentials: Sequence[KnownCredential] = ()
) -> CeremonyOptions:
    """Start a sign-in; with no `allowed_credentials` the browser offers passkeys."""
    options = generate_authentication_options(
        rp_id=rp_id,
        timeout=_TIMEOUT_MS,
        allow_credentials=_descriptors(allowed_credentials),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return CeremonyOptions(
        options_json=options_to_json(options), challenge=options.challenge
    )


def credential_id_of(response: CredentialJSON) -> bytes:
    """The credential id a sign-in response claims, to look up its stored key.

    The claim is unproven until `verify_authentication` succeeds.
    """
    try:
        return parse_authentication_credential_json(response).raw_id
    except Exception as exc:
        raise WebAuthnVerificationFailed(str(exc)) from exc


def verify_authentication(
    *,
    response: CredentialJSON,
    expected_challenge: bytes,
    expected_origin: str,
    expected_rp_id: str,
    credential_id: bytes,
    public_key: bytes,
    stored_sign_count: int,
    require_user_verification: bool = False,
) -> VerifiedAssertion:
    """Check the browser's reply to `authentication_options` against the stored key.

    For a passkey sign-in without a typed email, the caller must also check that
    `user_handle` belongs to the account that owns `credential_id`.
    """
    try:
        credential = parse_authentication_credential_json(response)

        # The caller looked the key up by the id the response claims; refusing any
        # mismatch keeps a lookup mistake from verifying against the wrong key.
        if not hmac.compare_digest(credential.raw_id, credential_id):
            raise WebAuthnVerificationFailed("response is for another credential")

        # The library is given a count of zero so that it checks the signature
        # without comparing counters; the comparison is made below, once the
        # signature is proven, so a forged response cannot raise a clone alarm.
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=require_user_verification,
        )
    except WebAuthnVerificationFailed:
        raise
    except Exception as exc:
        raise WebAuthnVerificationFailed(str(exc)) from exc

    # Keys that keep no counter always report zero, which stays acceptable while the
    # stored count is zero. Once a key has counted, the count must keep rising.
    if stored_sign_count > 0 and verified.new_sign_count <= stored_sign_count:
        raise SignCountRegression(
            f"sign count {verified.new_sign_count} is not above {stored_sign_count}"
        )

    return VerifiedAssertion(
        credential_id=verified.credential_id,
        new_sign_count=verified.new_sign_count,
        user_verified=verified.user_verified,
        backed_up=verified.credential_backed_up,
        user_handle=credential.response.user_handle,
    )
