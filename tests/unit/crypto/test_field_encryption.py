"""Specification of column-value encryption bound to its cell."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpetua.crypto.errors import DecryptionFailed, KeyDestroyed
from perpetua.crypto.fields import FieldCipher
from perpetua.crypto.keystore import DataClass, Keystore

PRACTICE = "practice-a"
OTHER_PRACTICE = "practice-b"


@pytest.fixture
def fields(keystore: Keystore) -> FieldCipher:
    keystore.current(OTHER_PRACTICE, DataClass.FIELDS)
    return FieldCipher(keystore)


# The keystore is safely shared across examples: each one only adds ciphertexts.
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=st.text())
def test_text_round_trips(keystore: Keystore, value: str) -> None:
    fields = FieldCipher(keystore)
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, value)

    assert fields.decrypt_str(PRACTICE, "patients", "full_name", 1, sealed) == value


def test_date_round_trips(fields: FieldCipher) -> None:
    row = uuid.uuid4()
    sealed = fields.encrypt_date(
        PRACTICE, "patients", "birth_date", row, date(1990, 2, 3)
    )

    assert fields.decrypt_date(PRACTICE, "patients", "birth_date", row, sealed) == date(
        1990, 2, 3
    )


def test_ciphertext_does_not_contain_the_plaintext(fields: FieldCipher) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, "Ada Lovelace")

    assert b"Ada" not in sealed


def test_moving_a_field_ciphertext_to_another_row_fails(fields: FieldCipher) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, "Ada Lovelace")

    with pytest.raises(DecryptionFailed):
        fields.decrypt_str(PRACTICE, "patients", "full_name", 2, sealed)


def test_moving_a_field_ciphertext_to_another_practice_fails(
    fields: FieldCipher,
) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, "Ada Lovelace")

    with pytest.raises(DecryptionFailed):
        fields.decrypt_str(OTHER_PRACTICE, "patients", "full_name", 1, sealed)


@pytest.mark.parametrize(
    ("table", "column"),
    [("patients", "preferred_name"), ("providers", "full_name")],
)
def test_moving_a_field_ciphertext_to_another_column_or_table_fails(
    fields: FieldCipher, table: str, column: str
) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, "Ada Lovelace")

    with pytest.raises(DecryptionFailed):
        fields.decrypt_str(PRACTICE, table, column, 1, sealed)


def test_text_ciphertext_cannot_be_read_as_a_date(fields: FieldCipher) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "birth_date", 1, "1990-02-03")

    with pytest.raises(DecryptionFailed):
        fields.decrypt_date(PRACTICE, "patients", "birth_date", 1, sealed)


def test_rotation_keeps_old_field_values_readable(
    fields: FieldCipher, keystore: Keystore
) -> None:
    old = fields.encrypt_str(PRACTICE, "patients", "phone", 1, "+15550100")
    keystore.rotate(PRACTICE, DataClass.FIELDS)
    new = fields.encrypt_str(PRACTICE, "patients", "phone", 1, "+15550100")

    assert old[1:5] == b"\x00\x00\x00\x01"
    assert new[1:5] == b"\x00\x00\x00\x02"
    assert fields.decrypt_str(PRACTICE, "patients", "phone", 1, old) == "+15550100"
    assert fields.decrypt_str(PRACTICE, "patients", "phone", 1, new) == "+15550100"


def test_field_values_of_an_offboarded_practice_raise_key_destroyed(
    fields: FieldCipher, keystore: Keystore
) -> None:
    sealed = fields.encrypt_str(PRACTICE, "patients", "full_name", 1, "Ada Lovelace")
    keystore.destroy(PRACTICE, DataClass.FIELDS, reason="offboarded", actor="admin")

    with pytest.raises(KeyDestroyed):
        fields.decrypt_str(PRACTICE, "patients", "full_name", 1, sealed)
