"""Security-key ceremonies against a software authenticator built from the spec.

The authenticator below signs with an ECDSA P-256 key and assembles
authenticatorData, clientDataJSON and a "none" attestation object byte by byte, as
a browser and key would, so the full register and sign-in round trip runs without
a browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

from perpetua.identity.errors import SignCountRegression, WebAuthnVerificationFailed
from perpetua.identity.webauthn_ceremony import (
    KnownCredential,
    RegisteredCredential,
    authentication_options,
    credential_id_of,
    registration_options,
    verify_authentication,
    verify_registration,
)

RP_ID = "clinic.example"
RP_NAME = "Westside Family Clinic"
ORIGIN = "https://clinic.example"
USER_ID = b"\x8f" * 16

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_ATTESTED_DATA = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A security key in software: one P-256 credential and a signature counter."""

    def __init__(self, rp_id: str = RP_ID, origin: str = ORIGIN) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.sign_count = 0
        self.counts = True

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def authenticator_data(self, flags: int, attested: bytes = b"") -> bytes:
        rp_id_hash = hashlib.sha256(self.rp_id.encode()).digest()
        return (
            rp_id_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested
        )

    def client_data(self, kind: str, options_json: str) -> bytes:
        challenge = json.loads(options_json)["challenge"]
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": self.origin,
                "crossOrigin": False,
            }
        ).encode()

    def create(self, options_json: str) -> dict[str, Any]:
        attested = (
            bytes(16)  # AAGUID: all zeros, as keys send under "none" attestation
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_public_key()
        )
        flags = FLAG_USER_PRESENT | FLAG_USER_VERIFIED | FLAG_ATTESTED_DATA
        attestation_object = encode_cbor(
            {
                "fmt": "none",
                "attStmt": {},
                "authData": self.authenticator_data(flags, attested),
            }
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(
                    self.client_data("webauthn.create", options_json)
                ),
                "attestationObject": b64url(attestation_object),
                "transports": ["usb", "nfc"],
            },
            "clientExtensionResults": {},
        }

    def get(self, options_json: str, *, user_handle: bytes = USER_ID) -> dict[str, Any]:
        if self.counts:
            self.sign_count += 1
        auth_data = self.authenticator_data(FLAG_USER_PRESENT | FLAG_USER_VERIFIED)
        client_data = self.client_data("webauthn.get", options_json)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(user_handle),
            },
            "clientExtensionResults": {},
        }


def register(authenticator: SoftAuthenticator) -> RegisteredCredential:
    start = registration_options(
        rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
    )
    return verify_registration(
        response=authenticator.create(start.options_json),
        expected_challenge=start.challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
    )


def sign_in(
    authenticator: SoftAuthenticator, stored: RegisteredCredential, stored_count: int
) -> int:
    start = authentication_options(
        rp_id=RP_ID, allowed_credentials=[KnownCredential(stored.credential_id)]
    )
    verified = verify_authentication(
        response=authenticator.get(start.options_json),
        expected_challenge=start.challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
        credential_id=stored.credential_id,
        public_key=stored.public_key,
        stored_sign_count=stored_count,
    )
    return verified.new_sign_count


def test_registration_options_ask_for_what_we_need() -> None:
    existing = KnownCredential(b"\x01\x02\x03", transports=("usb", "teleport"))

    start = registration_options(
        rp_id=RP_ID,
        rp_name=RP_NAME,
        user_id=USER_ID,
        user_name="frontdesk@clinic.example",
        user_display_name="Front desk",
        existing_credentials=[existing],
    )
    options = json.loads(start.options_json)

    assert options["rp"] == {"id": RP_ID, "name": RP_NAME}
    assert options["user"] == {
        "id": b64url(USER_ID),
        "name": "frontdesk@clinic.example",
        "displayName": "Front desk",
    }
    assert unb64url(options["challenge"]) == start.challenge
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["excludeCredentials"] == [
        {"id": b64url(b"\x01\x02\x03"), "type": "public-key", "transports": ["usb"]}
    ]


def test_every_ceremony_gets_a_fresh_unpredictable_challenge() -> None:
    challenges = {
        registration_options(
            rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
        ).challenge
        for _ in range(5)
    } | {authentication_options(rp_id=RP_ID).challenge for _ in range(5)}

    assert len(challenges) == 10
    assert all(len(challenge) >= 32 for challenge in challenges)


def test_authentication_options_name_allowed_keys_and_prefer_verification() -> None:
    start = authentication_options(
        rp_id=RP_ID, allowed_credentials=[KnownCredential(b"\x09" * 8, ("internal",))]
    )
    options = json.loads(start.options_json)

    assert options["rpId"] == RP_ID
    assert options["userVerification"] == "preferred"
    assert options["allowCredentials"] == [
        {"id": b64url(b"\x09" * 8), "type": "public-key", "transports": ["internal"]}
    ]
    assert unb64url(options["challenge"]) == start.challenge


def test_passkey_sign_in_allows_any_key() -> None:
    options = json.loads(authentication_options(rp_id=RP_ID).options_json)

    assert options["allowCredentials"] == []


def test_registration_returns_what_to_store() -> None:
    authenticator = SoftAuthenticator()

    stored = register(authenticator)

    assert stored.credential_id == authenticator.credential_id
    assert stored.public_key == authenticator.cose_public_key()
    assert stored.sign_count == 0
    assert stored.transports == ("usb", "nfc")
    assert stored.aaguid == "00000000-0000-0000-0000-000000000000"
    assert stored.user_verified is True
    assert stored.backed_up is False


def test_register_then_sign_in_twice_counts_up() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)

    first = sign_in(authenticator, stored, stored.sign_count)
    second = sign_in(authenticator, stored, first)

    assert (first, second) == (1, 2)


def test_sign_in_returns_the_user_handle_for_passkey_lookup() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    start = authentication_options(rp_id=RP_ID)
    response = authenticator.get(start.options_json)

    assert credential_id_of(response) == stored.credential_id
    verified = verify_authentication(
        response=json.dumps(response),
        expected_challenge=start.challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
        credential_id=stored.credential_id,
        public_key=stored.public_key,
        stored_sign_count=0,
    )

    assert verified.user_handle == USER_ID
    assert verified.credential_id == stored.credential_id
    assert verified.user_verified is True


def test_registration_for_another_challenge_is_refused() -> None:
    start = registration_options(
        rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
    )
    other = registration_options(
        rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
    )

    with pytest.raises(WebAuthnVerificationFailed) as caught:
        verify_registration(
            response=SoftAuthenticator().create(other.options_json),
            expected_challenge=start.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
        )

    assert caught.value.code == "webauthn_verification_failed"
    assert "challenge" in str(caught.value)


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [("https://evil.example", RP_ID), (ORIGIN, "evil.example")],
)
def test_registration_from_another_site_is_refused(origin: str, rp_id: str) -> None:
    start = registration_options(
        rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
    )
    phished = SoftAuthenticator(rp_id=rp_id, origin=origin)

    with pytest.raises(WebAuthnVerificationFailed):
        verify_registration(
            response=phished.create(start.options_json),
            expected_challenge=start.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
        )


def test_registration_requiring_verification_refuses_presence_only() -> None:
    start = registration_options(
        rp_id=RP_ID, rp_name=RP_NAME, user_id=USER_ID, user_name="frontdesk"
    )
    authenticator = SoftAuthenticator()
    response = authenticator.create(start.options_json)
    attestation = {
        "fmt": "none",
        "attStmt": {},
        "authData": authenticator.authenticator_data(
            FLAG_USER_PRESENT | FLAG_ATTESTED_DATA,
            bytes(16)
            + struct.pack(">H", 32)
            + authenticator.credential_id
            + authenticator.cose_public_key(),
        ),
    }
    response["response"]["attestationObject"] = b64url(encode_cbor(attestation))

    with pytest.raises(WebAuthnVerificationFailed):
        verify_registration(
            response=response,
            expected_challenge=start.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
            require_user_verification=True,
        )


@pytest.mark.parametrize("garbage", ["", "{", "[]", json.dumps({"id": "x"})])
def test_malformed_responses_are_refused(garbage: str) -> None:
    with pytest.raises(WebAuthnVerificationFailed):
        verify_registration(
            response=garbage,
            expected_challenge=b"c" * 32,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
        )
    with pytest.raises(WebAuthnVerificationFailed):
        credential_id_of(garbage)


def test_sign_in_with_a_stale_challenge_is_refused() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    earlier = authentication_options(rp_id=RP_ID)
    current = authentication_options(rp_id=RP_ID)

    with pytest.raises(WebAuthnVerificationFailed) as caught:
        verify_authentication(
            response=authenticator.get(earlier.options_json),
            expected_challenge=current.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
            credential_id=stored.credential_id,
            public_key=stored.public_key,
            stored_sign_count=0,
        )

    assert not isinstance(caught.value, SignCountRegression)


def test_sign_in_signed_by_another_key_is_refused() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    impostor = SoftAuthenticator()
    impostor.credential_id = authenticator.credential_id
    start = authentication_options(rp_id=RP_ID)

    with pytest.raises(WebAuthnVerificationFailed, match="signature"):
        verify_authentication(
            response=impostor.get(start.options_json),
            expected_challenge=start.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
            credential_id=stored.credential_id,
            public_key=stored.public_key,
            stored_sign_count=0,
        )


def test_response_for_another_credential_is_refused() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    start = authentication_options(rp_id=RP_ID)

    with pytest.raises(WebAuthnVerificationFailed, match="another credential"):
        verify_authentication(
            response=authenticator.get(start.options_json),
            expected_challenge=start.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
            credential_id=b"\x00" * 32,
            public_key=stored.public_key,
            stored_sign_count=0,
        )


@pytest.mark.parametrize("reported", [3, 5])
def test_counter_that_did_not_rise_is_a_regression(reported: int) -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    authenticator.sign_count = reported - 1  # get() adds one before signing

    with pytest.raises(SignCountRegression) as caught:
        sign_in(authenticator, stored, stored_count=5)

    assert caught.value.code == "webauthn_sign_count_regression"
    assert isinstance(caught.value, WebAuthnVerificationFailed)


def test_forged_low_counter_is_a_plain_failure_not_a_clone_alarm() -> None:
    authenticator = SoftAuthenticator()
    stored = register(authenticator)
    forger = SoftAuthenticator()
    forger.credential_id = authenticator.credential_id

    with pytest.raises(WebAuthnVerificationFailed) as caught:
        sign_in(forger, stored, stored_count=5)

    assert not isinstance(caught.value, SignCountRegression)


def test_key_that_keeps_no_counter_may_keep_reporting_zero() -> None:
    authenticator = SoftAuthenticator()
    authenticator.counts = False
    stored = register(authenticator)

    assert sign_in(authenticator, stored, 0) == 0
    assert sign_in(authenticator, stored, 0) == 0


def test_counter_dropping_to_zero_after_counting_is_a_regression() -> None:
    authenticator = SoftAuthenticator()
    authenticator.counts = False
    stored = register(authenticator)

    with pytest.raises(SignCountRegression):
        sign_in(authenticator, stored, stored_count=7)
