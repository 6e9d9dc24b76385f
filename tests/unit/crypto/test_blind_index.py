"""Specification of blind indexes: normalization, keying, domain separation."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpetua.crypto.blind_index import (
    TAG_SIZE,
    BlindIndexer,
    normalize_date,
    normalize_identifier,
    normalize_name,
    normalize_phone,
)
from perpetua.crypto.errors import NormalizationError
from perpetua.crypto.keystore import DataClass, Keystore

PRACTICE = "practice-a"


@pytest.mark.parametrize(
    "typed",
    [
        "(555) 010-0199",
        "555.010.0199",
        "+1 555 010 0199",
        "1-555-010-0199 ",
        "0015550100199",
    ],
)
def test_phone_numbers_as_typed_normalize_to_e164(typed: str) -> None:
    assert normalize_phone(typed) == "+15550100199"


def test_international_phone_numbers_keep_their_country_code() -> None:
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"
    assert normalize_phone("011 44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("typed", ["", "12345", "+1234567890123456"])
def test_implausible_phone_numbers_are_refused(typed: str) -> None:
    with pytest.raises(NormalizationError):
        normalize_phone(typed)


def test_names_normalize_case_width_and_whitespace() -> None:
    assert normalize_name("  ADA\t  Lovelace ") == "ada lovelace"
    assert normalize_name("Ｍüller") == normalize_name("MÜLLER")
    assert normalize_name("STRASSE") == normalize_name("straße")


def test_dates_normalize_to_iso() -> None:
    assert normalize_date(date(1990, 2, 3)) == "1990-02-03"
    assert normalize_date(" 1990-02-03 ") == "1990-02-03"
    with pytest.raises(NormalizationError):
        normalize_date("02/03/1990")


def test_member_ids_ignore_case_and_separators() -> None:
    assert normalize_identifier("xyz-123 456") == normalize_identifier("XYZ123456")


def test_equal_inputs_give_equal_tags_of_fixed_size(keystore: Keystore) -> None:
    index = BlindIndexer(keystore)

    tag = index.phone(PRACTICE, "(555) 010-0199")

    assert tag == index.phone(PRACTICE, "+1 555 010 0199")
    assert len(tag) == TAG_SIZE


def test_phone_and_member_id_indexes_cannot_be_correlated(keystore: Keystore) -> None:
    index = BlindIndexer(keystore)

    as_phone = index.tag(PRACTICE, "phone", "+15550100199")
    as_member = index.tag(PRACTICE, "member_id", "+15550100199")

    assert as_phone[2:] != as_member[2:]


def test_the_same_value_in_two_practices_gives_unrelated_tags(
    keystore: Keystore,
) -> None:
    index = BlindIndexer(keystore)

    assert index.name(PRACTICE, "Ada Lovelace") != index.name(
        "practice-b", "Ada Lovelace"
    )


def test_blind_index_key_is_not_the_field_encryption_key(keystore: Keystore) -> None:
    assert (
        keystore.current(PRACTICE, DataClass.BLIND_INDEX).secret
        != keystore.current(PRACTICE, DataClass.FIELDS).secret
    )


def test_rotation_changes_tags_and_old_tags_stay_computable(keystore: Keystore) -> None:
    index = BlindIndexer(keystore)
    old = index.birth_date(PRACTICE, date(1990, 2, 3))

    keystore.rotate(PRACTICE, DataClass.BLIND_INDEX)

    new = index.birth_date(PRACTICE, date(1990, 2, 3))
    assert old[:2] == b"\x00\x01"
    assert new[:2] == b"\x00\x02"
    assert new != old
    assert index.tag(PRACTICE, "birth_date", "1990-02-03", version=1) == old


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_name_normalization_is_idempotent(name: str) -> None:
    once = normalize_name(name)

    assert normalize_name(once) == once


def test_index_names_are_restricted(keystore: Keystore) -> None:
    with pytest.raises(ValueError, match="index name"):
        BlindIndexer(keystore).tag(PRACTICE, "Phone Number", "+15550100199")
