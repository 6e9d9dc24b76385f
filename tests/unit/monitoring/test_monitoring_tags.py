"""Blind-index tags for comparing members with patients: the same person, however
typed, gives the same tag; different indexes, practices and values never do."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest

from perpetua.crypto.blind_index import BlindIndexer
from perpetua.crypto.errors import NormalizationError
from perpetua.crypto.kek import LocalKek
from perpetua.crypto.keystore import Keystore
from perpetua.monitoring.tags import identity_tags, normalize_address, surname_of

PRACTICE = uuid.UUID("7c1b0e52-3f7a-4d7e-9a51-2b8f6c0d4e11")


@pytest.fixture
def indexer(tmp_path: Path) -> BlindIndexer:
    return BlindIndexer(Keystore(tmp_path / "ks", LocalKek(secrets.token_bytes(32))))


@pytest.mark.parametrize(
    ("typed", "surname"),
    [
        ("Alan Ashwick", "ashwick"),
        ("  alan   ASHWICK ", "ashwick"),
        ("Ashwick, Alan", "ashwick"),
        ("Mary-Jo O'Dale-Holt", "o'dale-holt"),
    ],
)
def test_surname_is_the_family_name_however_typed(typed: str, surname: str) -> None:
    assert surname_of(typed) == surname


def test_empty_name_has_no_surname() -> None:
    with pytest.raises(NormalizationError):
        surname_of("   ")


def test_address_spellings_fold_together() -> None:
    assert normalize_address("12 Elm Street, Apt. 4") == normalize_address(
        "12 elm st apt 4"
    )
    assert normalize_address("12 Elm Street") != normalize_address("14 Elm Street")
    with pytest.raises(NormalizationError):
        normalize_address(" ,. ")


def test_tags_match_for_the_same_person_and_differ_by_index(
    indexer: BlindIndexer,
) -> None:
    member = dict(
        identity_tags(
            indexer,
            PRACTICE,
            full_name="Alan Ashwick",
            phone="(212) 555-0142",
            address="12 Elm Street",
        )
    )
    patient = dict(
        identity_tags(
            indexer,
            PRACTICE,
            full_name="ALAN  ashwick",
            phone="+1 212 555 0142",
            address="12 elm st.",
        )
    )

    assert member == patient
    assert set(member) == {"name", "surname", "phone", "address"}
    # Each kind is its own HMAC domain: no tag repeats across kinds.
    assert len(set(member.values())) == 4
    # The phone tag is exactly the records service's `phone` index.
    assert member["phone"] == indexer.phone(PRACTICE, "212-555-0142")


def test_tags_of_two_practices_never_match(indexer: BlindIndexer) -> None:
    other = uuid.UUID("0f4c2a9e-8b3d-4c1a-b7e6-5d9f1e2a3b4c")

    mine = identity_tags(indexer, PRACTICE, full_name="Alan Ashwick")
    theirs = identity_tags(indexer, other, full_name="Alan Ashwick")

    assert {t for _, t in mine}.isdisjoint(t for _, t in theirs)


def test_values_that_do_not_normalize_are_skipped(indexer: BlindIndexer) -> None:
    tags = identity_tags(indexer, PRACTICE, full_name=" ", phone="12", address="..")

    assert tags == []
