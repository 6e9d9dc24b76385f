"""Specification of the cloud KEK adapters.

AWS KMS runs against moto's in-process KMS, which really enforces the
encryption context. Cloud KMS and Vault Transit have no such emulator here:
their tests use small fakes that mimic the client call shapes and refuse a
mismatched context, so they check our adapters' requests and error mapping,
not the services themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from perpetua.crypto.errors import DecryptionFailed, KekUnavailable
from perpetua.crypto.kek import KekProvider
from perpetua.crypto.kek_aws import AwsKmsKek
from perpetua.crypto.kek_gcp import GcpKmsKek
from perpetua.crypto.kek_vault import VaultTransitKek
from perpetua.crypto.keystore import DataClass, Keystore

CLASS_KEY = secrets.token_bytes(32)
AD = b"practice-a/fields/1"


@pytest.fixture
def kms_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def test_aws_kms_kek_wraps_and_unwraps_with_encryption_context(kms_client: Any) -> None:
    key_id = kms_client.create_key()["KeyMetadata"]["KeyId"]
    kek = AwsKmsKek(key_id, client=kms_client)

    wrapped = kek.wrap(CLASS_KEY, AD)

    assert CLASS_KEY not in wrapped
    assert kek.unwrap(wrapped, AD) == CLASS_KEY
    assert kek.kek_id == f"aws-kms:{key_id}"


def test_aws_kms_refuses_another_context(kms_client: Any) -> None:
    kek = AwsKmsKek(kms_client.create_key()["KeyMetadata"]["KeyId"], client=kms_client)
    wrapped = kek.wrap(CLASS_KEY, AD)

    with pytest.raises(DecryptionFailed):
        kek.unwrap(wrapped, b"practice-b/fields/1")


def test_aws_kms_wrong_key_fails(kms_client: Any) -> None:
    wrapped = AwsKmsKek(
        kms_client.create_key()["KeyMetadata"]["KeyId"], client=kms_client
    ).wrap(CLASS_KEY, AD)
    other = AwsKmsKek(
        kms_client.create_key()["KeyMetadata"]["KeyId"], client=kms_client
    )

    # Real KMS answers IncorrectKeyException (DecryptionFailed); moto answers
    # AccessDeniedException (KekUnavailable). Either way nothing is unwrapped.
    with pytest.raises((DecryptionFailed, KekUnavailable)):
        other.unwrap(wrapped, AD)


def test_aws_kms_unknown_key_is_kek_unavailable(kms_client: Any) -> None:
    kek = AwsKmsKek("alias/does-not-exist", client=kms_client)

    with pytest.raises(KekUnavailable):
        kek.wrap(CLASS_KEY, AD)


def test_keystore_runs_on_aws_kms(kms_client: Any, tmp_path: Path) -> None:
    kek = AwsKmsKek(kms_client.create_key()["KeyMetadata"]["KeyId"], client=kms_client)
    keystore = Keystore(tmp_path, kek)
    key = keystore.current("practice-a", DataClass.FIELDS)

    assert Keystore(tmp_path, kek).current("practice-a", DataClass.FIELDS) == key


# Named exactly like the SDK's exception: the adapter maps errors by name.
class InvalidArgument(Exception):
    """Named like google.api_core.exceptions.InvalidArgument."""


@dataclass
class _GcpResponse:
    ciphertext: bytes = b""
    plaintext: bytes = b""


class FakeCloudKms:
    """Mimics KeyManagementServiceClient.encrypt/decrypt(request=...)."""

    def __init__(self) -> None:
        self._keys: dict[str, AESGCM] = {}
        self.requests: list[dict[str, Any]] = []

    def _key(self, name: str) -> AESGCM:
        return self._keys.setdefault(name, AESGCM(secrets.token_bytes(32)))

    def encrypt(self, request: dict[str, Any]) -> _GcpResponse:
        self.requests.append(request)
        nonce = secrets.token_bytes(12)
        aad = request["additional_authenticated_data"]
        sealed = self._key(request["name"]).encrypt(nonce, request["plaintext"], aad)
        return _GcpResponse(ciphertext=nonce + sealed)

    def decrypt(self, request: dict[str, Any]) -> _GcpResponse:
        self.requests.append(request)
        blob, aad = request["ciphertext"], request["additional_authenticated_data"]
        try:
            plaintext = self._key(request["name"]).decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            raise InvalidArgument("400 Decryption failed") from None
        return _GcpResponse(plaintext=plaintext)


class InvalidRequest(Exception):
    """Named like hvac.exceptions.InvalidRequest."""


class FakeTransit:
    """Mimics hvac's client.secrets.transit for a key created with derived=true."""

    def __init__(self) -> None:
        self._root = secrets.token_bytes(32)

    def _aead(self, name: str, context: str) -> AESGCM:
        # Vault derives a key per context; an HMAC stands in for its KDF here.
        derived = hmac.new(self._root, f"{name}|{context}".encode(), hashlib.sha256)
        return AESGCM(derived.digest())

    def encrypt_data(
        self, *, name: str, plaintext: str, context: str, mount_point: str
    ) -> dict[str, Any]:
        nonce = secrets.token_bytes(12)
        sealed = self._aead(name, context).encrypt(
            nonce, base64.b64decode(plaintext), None
        )
        token = "vault:v1:" + base64.b64encode(nonce + sealed).decode()
        return {"data": {"ciphertext": token}}

    def decrypt_data(
        self, *, name: str, ciphertext: str, context: str, mount_point: str
    ) -> dict[str, Any]:
        blob = base64.b64decode(ciphertext.removeprefix("vault:v1:"))
        try:
            plaintext = self._aead(name, context).decrypt(blob[:12], blob[12:], None)
        except InvalidTag:
            raise InvalidRequest("cipher: message authentication failed") from None
        return {"data": {"plaintext": base64.b64encode(plaintext).decode()}}


class FakeHvacClient:
    def __init__(self) -> None:
        self.secrets = type("Secrets", (), {"transit": FakeTransit()})()


GCP_KEY = "projects/p/locations/global/keyRings/perpetua/cryptoKeys/kek"


@pytest.mark.parametrize(
    "make",
    [
        lambda: GcpKmsKek(GCP_KEY, client=FakeCloudKms()),
        lambda: VaultTransitKek("perpetua-kek", client=FakeHvacClient()),
    ],
    ids=["gcp-kms", "vault-transit"],
)
def test_fake_backed_keks_round_trip_and_refuse_another_context(make: Any) -> None:
    kek: KekProvider = make()

    wrapped = kek.wrap(CLASS_KEY, AD)

    assert kek.unwrap(wrapped, AD) == CLASS_KEY
    with pytest.raises(DecryptionFailed):
        kek.unwrap(wrapped, b"practice-b/fields/1")


def test_gcp_kms_kek_sends_associated_data_as_aad() -> None:
    client = FakeCloudKms()

    GcpKmsKek(GCP_KEY, client=client).wrap(CLASS_KEY, AD)

    assert client.requests[0]["additional_authenticated_data"] == AD
    assert client.requests[0]["name"] == GCP_KEY


def test_vault_ciphertext_that_is_not_ascii_is_a_format_error() -> None:
    kek = VaultTransitKek("perpetua-kek", client=FakeHvacClient())

    with pytest.raises(DecryptionFailed) as caught:
        kek.unwrap(b"\xff\xfe", AD)

    assert caught.value.reason == "format"


@pytest.mark.parametrize(
    ("module", "make"),
    [
        ("boto3", lambda: AwsKmsKek("alias/x")),
        ("google.cloud.kms", lambda: GcpKmsKek(GCP_KEY)),
        ("hvac", lambda: VaultTransitKek("k", url="http://127.0.0.1:1")),
    ],
)
def test_missing_sdk_is_reported_as_kek_unavailable(
    monkeypatch: pytest.MonkeyPatch, module: str, make: Any
) -> None:
    monkeypatch.setitem(sys.modules, module, None)

    with pytest.raises(KekUnavailable, match="pip install"):
        make()
