"""Specification of the sealed format and canonical associated data."""

from __future__ import annotations

import secrets
import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpetua.crypto import aead
from perpetua.crypto.errors import DecryptionFailed

KEY = secrets.token_bytes(32)
AD = aead.associated_data("test/v1", "practice-a", "patients", "name", 7)


def test_sealed_value_round_trips_and_names_its_key_version() -> None:
    sealed = aead.seal(KEY, 42, b"Ada Lovelace", AD)

    assert aead.key_version_of(sealed) == 42
    assert aead.open_sealed(KEY, sealed, AD) == b"Ada Lovelace"
    assert len(sealed) == len(b"Ada Lovelace") + aead.OVERHEAD


def test_same_plaintext_seals_differently_each_time() -> None:
    assert aead.seal(KEY, 1, b"x", AD) != aead.seal(KEY, 1, b"x", AD)


@given(st.data())
def test_flipping_any_byte_of_a_sealed_value_fails(data: st.DataObject) -> None:
    sealed = bytearray(aead.seal(KEY, 3, b"555-0100", AD))
    position = data.draw(st.integers(0, len(sealed) - 1))
    sealed[position] ^= data.draw(st.integers(1, 255))

    with pytest.raises(DecryptionFailed):
        aead.open_sealed(KEY, bytes(sealed), AD)


def test_forged_key_version_fails_even_with_the_right_key() -> None:
    sealed = bytearray(aead.seal(KEY, 1, b"secret", AD))
    sealed[4] = 2

    with pytest.raises(DecryptionFailed):
        aead.open_sealed(KEY, bytes(sealed), AD)


def test_error_message_contains_no_plaintext_or_key() -> None:
    sealed = aead.seal(KEY, 1, b"Grace Hopper", AD)
    other_ad = aead.associated_data("test/v1", "practice-b")

    with pytest.raises(DecryptionFailed) as caught:
        aead.open_sealed(KEY, sealed, other_ad)

    message = str(caught.value)
    assert "Grace" not in message
    assert KEY.hex() not in message
    assert caught.value.reason == "authentication"


def test_truncated_or_unknown_format_is_a_format_error() -> None:
    with pytest.raises(DecryptionFailed) as short:
        aead.key_version_of(b"\x01\x00")
    sealed = bytearray(aead.seal(KEY, 1, b"x", AD))
    sealed[0] = 9
    with pytest.raises(DecryptionFailed) as unknown:
        aead.open_sealed(KEY, bytes(sealed), AD)

    assert short.value.reason == "format"
    assert unknown.value.reason == "format"


@given(
    st.lists(st.text(max_size=5), max_size=4), st.lists(st.text(max_size=5), max_size=4)
)
def test_associated_data_is_unambiguous(left: list[str], right: list[str]) -> None:
    if left != right:
        assert aead.associated_data("l", *left) != aead.associated_data("l", *right)


def test_associated_data_keeps_types_and_labels_apart() -> None:
    row = uuid.uuid4()

    encodings = {
        aead.associated_data("l", 5),
        aead.associated_data("l", "5"),
        aead.associated_data("l", b"5"),
        aead.associated_data("l", None),
        aead.associated_data("l", ""),
        aead.associated_data("l", row),
        aead.associated_data("l", str(row)),
        aead.associated_data("l", date(2026, 1, 2)),
        aead.associated_data("l", "2026-01-02"),
        aead.associated_data("other", 5),
    }

    assert len(encodings) == 10


def test_seal_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        aead.seal(b"k" * 16, 1, b"x", AD)
