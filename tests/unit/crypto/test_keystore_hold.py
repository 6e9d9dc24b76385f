"""Specification of the keystore's legal-hold bucket, moving a data key between
buckets, and reading a destroyed bucket's certificate back from its tombstone."""

from __future__ import annotations

import pytest

from perpetua.crypto.errors import DecryptionFailed, KeyDestroyed
from perpetua.crypto.keystore import HOLD_PERIOD, DataClass, Keystore

PRACTICE = "practice-a"
RECORDINGS = DataClass.RECORDINGS


def test_hold_is_a_bucket_of_its_own_for_bucketed_classes(keystore: Keystore) -> None:
    hold = keystore.current(PRACTICE, RECORDINGS, HOLD_PERIOD)
    month = keystore.current(PRACTICE, RECORDINGS, "2026-01")
    assert hold.secret != month.secret
    with pytest.raises(ValueError, match="not bucketed"):
        keystore.current(PRACTICE, DataClass.DOCUMENTS, HOLD_PERIOD)
    with pytest.raises(ValueError, match="period like"):
        keystore.current(PRACTICE, RECORDINGS, "holdx")


def test_moved_data_key_survives_its_month_being_destroyed(keystore: Keystore) -> None:
    data_key = keystore.new_data_key()
    wrapped = keystore.wrap_data_key(PRACTICE, RECORDINGS, "obj-1", data_key, "2026-01")

    moved, version = keystore.move_data_key(
        PRACTICE, RECORDINGS, "obj-1", wrapped, from_period="2026-01",
        to_period=HOLD_PERIOD,
    )  # fmt: skip
    keystore.destroy(PRACTICE, RECORDINGS, "2026-01", reason="retention", actor="t")

    assert version == 1
    assert (
        keystore.unwrap_data_key(PRACTICE, RECORDINGS, "obj-1", moved, HOLD_PERIOD)
        == data_key
    )
    with pytest.raises(KeyDestroyed):
        keystore.unwrap_data_key(PRACTICE, RECORDINGS, "obj-1", wrapped, "2026-01")


def test_moved_data_key_stays_bound_to_its_object(keystore: Keystore) -> None:
    wrapped = keystore.wrap_data_key(
        PRACTICE, RECORDINGS, "obj-1", keystore.new_data_key(), "2026-01"
    )
    moved, _ = keystore.move_data_key(
        PRACTICE, RECORDINGS, "obj-1", wrapped, from_period="2026-01",
        to_period=HOLD_PERIOD,
    )  # fmt: skip
    with pytest.raises(DecryptionFailed):
        keystore.unwrap_data_key(PRACTICE, RECORDINGS, "obj-2", moved, HOLD_PERIOD)


def test_certificate_is_read_back_from_the_tombstone(keystore: Keystore) -> None:
    keystore.current(PRACTICE, RECORDINGS, "2026-01")
    assert keystore.certificate(PRACTICE, RECORDINGS, "2026-01") is None
    made = keystore.destroy(
        PRACTICE, RECORDINGS, "2026-01", reason="retention ended", actor="job"
    )
    assert keystore.certificate(PRACTICE, RECORDINGS, "2026-01") == made
    assert keystore.kek_id == made.kek_id
