"""Specification of the keystore: class keys, rotation, destruction, data keys."""

from __future__ import annotations

import base64
import json
import secrets
import stat
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from perpetua.crypto.errors import (
    DecryptionFailed,
    KeyDestroyed,
    KeyNotFound,
)
from perpetua.crypto.kek import LocalKek
from perpetua.crypto.keystore import DataClass, Keystore, period_of

PRACTICE = "practice-a"
OTHER_PRACTICE = "practice-b"


def test_class_key_is_created_on_first_use_and_then_reused(keystore: Keystore) -> None:
    first = keystore.current(PRACTICE, DataClass.FIELDS)
    again = keystore.current(PRACTICE, DataClass.FIELDS)

    assert first.version == 1
    assert again.secret == first.secret


def test_each_practice_and_data_class_gets_its_own_key(keystore: Keystore) -> None:
    secrets_seen = {
        keystore.current(PRACTICE, DataClass.FIELDS).secret,
        keystore.current(OTHER_PRACTICE, DataClass.FIELDS).secret,
        keystore.current(PRACTICE, DataClass.BLIND_INDEX).secret,
        keystore.current(PRACTICE, DataClass.RECORDINGS, "2026-12").secret,
        keystore.current(PRACTICE, DataClass.RECORDINGS, "2027-01").secret,
        keystore.current(PRACTICE, DataClass.TRANSCRIPTS, "2026-12").secret,
    }

    assert len(secrets_seen) == 6


def test_recording_keys_need_a_period_and_field_keys_refuse_one(
    keystore: Keystore,
) -> None:
    with pytest.raises(ValueError, match="period"):
        keystore.current(PRACTICE, DataClass.RECORDINGS)
    with pytest.raises(ValueError, match="period"):
        keystore.current(PRACTICE, DataClass.TRANSCRIPTS, "2026-13")
    with pytest.raises(ValueError, match="not bucketed"):
        keystore.current(PRACTICE, DataClass.FIELDS, "2026-12")


@pytest.mark.parametrize("practice", ["../etc", "a/b", "", "x" * 129, "a.b"])
def test_practice_ids_that_could_escape_the_keystore_are_refused(
    keystore: Keystore, practice: str
) -> None:
    with pytest.raises(ValueError, match="practice id"):
        keystore.current(practice, DataClass.FIELDS)


def test_period_of_labels_a_month() -> None:
    assert period_of(date(2026, 12, 31)) == "2026-12"
    assert period_of(datetime(2027, 1, 1, tzinfo=UTC)) == "2027-01"


def test_keystore_files_are_0600_and_contain_no_plaintext_key_bytes(
    keystore: Keystore, keystore_root: Path
) -> None:
    key = keystore.current(PRACTICE, DataClass.FIELDS)
    rotated = keystore.rotate(PRACTICE, DataClass.FIELDS)

    files = [p for p in keystore_root.rglob("*") if p.is_file()]
    assert len(files) == 2
    for path in files:
        content = path.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for secret in (key.secret, rotated.secret):
            assert secret not in content
            assert secret.hex().encode() not in content
            assert base64.b64encode(secret) not in content


def test_class_key_repr_hides_the_secret(keystore: Keystore) -> None:
    key = keystore.current(PRACTICE, DataClass.FIELDS)

    assert key.secret.hex() not in repr(key)
    assert "secret" not in repr(key)


def test_another_process_with_the_same_kek_reads_the_same_key(
    keystore: Keystore, kek: LocalKek, make_keystore: Callable[[LocalKek], Keystore]
) -> None:
    key = keystore.current(PRACTICE, DataClass.FIELDS)

    assert make_keystore(kek).current(PRACTICE, DataClass.FIELDS).secret == key.secret


def test_wrong_kek_fails_to_open_the_keystore(
    keystore: Keystore, make_keystore: Callable[[LocalKek], Keystore]
) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)
    intruder = make_keystore(LocalKek(secrets.token_bytes(32)))

    with pytest.raises(DecryptionFailed) as caught:
        intruder.current(PRACTICE, DataClass.FIELDS)

    assert caught.value.reason == "wrong_kek"


def test_key_file_moved_to_another_practice_does_not_unwrap(
    keystore: Keystore,
    kek: LocalKek,
    keystore_root: Path,
    make_keystore: Callable[[LocalKek], Keystore],
) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)
    keystore.current(OTHER_PRACTICE, DataClass.FIELDS)
    source = keystore_root / PRACTICE / "fields" / "_" / "v000001.key"
    target = keystore_root / OTHER_PRACTICE / "fields" / "_" / "v000001.key"
    target.write_bytes(source.read_bytes())

    with pytest.raises(DecryptionFailed):
        make_keystore(kek).current(OTHER_PRACTICE, DataClass.FIELDS)


def test_rotation_keeps_old_data_decryptable(keystore: Keystore) -> None:
    object_id = "doc-1"
    data_key = keystore.new_data_key()
    wrapped_v1 = keystore.wrap_data_key(
        PRACTICE, DataClass.DOCUMENTS, object_id, data_key
    )

    rotated = keystore.rotate(PRACTICE, DataClass.DOCUMENTS)
    wrapped_v2 = keystore.wrap_data_key(
        PRACTICE, DataClass.DOCUMENTS, "doc-2", data_key
    )

    assert rotated.version == 2
    assert keystore.current(PRACTICE, DataClass.DOCUMENTS).version == 2
    assert (
        keystore.unwrap_data_key(PRACTICE, DataClass.DOCUMENTS, object_id, wrapped_v1)
        == data_key
    )
    assert (
        keystore.unwrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-2", wrapped_v2)
        == data_key
    )


def test_rewrap_moves_a_data_key_to_the_newest_class_key(keystore: Keystore) -> None:
    data_key = keystore.new_data_key()
    wrapped = keystore.wrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-1", data_key)
    keystore.rotate(PRACTICE, DataClass.DOCUMENTS)

    rewrapped = keystore.rewrap_data_key(
        PRACTICE, DataClass.DOCUMENTS, "doc-1", wrapped
    )
    keystore.destroy(
        PRACTICE, DataClass.DOCUMENTS, reason="retire v1", actor="ops", versions=(1,)
    )

    assert rewrapped != wrapped
    assert (
        keystore.unwrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-1", rewrapped)
        == data_key
    )
    with pytest.raises(KeyDestroyed):
        keystore.unwrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-1", wrapped)
    assert (
        keystore.rewrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-1", rewrapped)
        == rewrapped
    )


def test_data_key_wrapped_for_one_object_does_not_unwrap_for_another(
    keystore: Keystore,
) -> None:
    keystore.current(OTHER_PRACTICE, DataClass.DOCUMENTS)
    wrapped = keystore.wrap_data_key(
        PRACTICE, DataClass.DOCUMENTS, "doc-1", keystore.new_data_key()
    )

    with pytest.raises(DecryptionFailed):
        keystore.unwrap_data_key(PRACTICE, DataClass.DOCUMENTS, "doc-2", wrapped)
    with pytest.raises(DecryptionFailed):
        keystore.unwrap_data_key(OTHER_PRACTICE, DataClass.DOCUMENTS, "doc-1", wrapped)


def test_recording_data_key_does_not_unwrap_with_the_transcripts_key(
    keystore: Keystore,
) -> None:
    keystore.current(PRACTICE, DataClass.TRANSCRIPTS, "2026-12")
    wrapped = keystore.wrap_data_key(
        PRACTICE, DataClass.RECORDINGS, "call-1", keystore.new_data_key(), "2026-12"
    )

    with pytest.raises(DecryptionFailed):
        keystore.unwrap_data_key(
            PRACTICE, DataClass.TRANSCRIPTS, "call-1", wrapped, "2026-12"
        )


def test_destroyed_key_raises_key_destroyed_and_certifies_it(
    keystore: Keystore, keystore_root: Path, kek: LocalKek
) -> None:
    wrapped = keystore.wrap_data_key(
        PRACTICE, DataClass.RECORDINGS, "call-1", keystore.new_data_key(), "2026-12"
    )
    keystore.rotate(PRACTICE, DataClass.RECORDINGS, "2026-12")
    seven_years_later = Keystore(
        keystore_root, kek, now=lambda: datetime(2033, 1, 1, tzinfo=UTC)
    )

    certificate = seven_years_later.destroy(
        PRACTICE,
        DataClass.RECORDINGS,
        "2026-12",
        reason="retention period of 6 years elapsed",
        actor="system:retention",
    )

    assert certificate.key_versions == (1, 2)
    assert certificate.destroyed_at == "2033-01-01T00:00:00+00:00"
    assert certificate.reason == "retention period of 6 years elapsed"
    assert certificate.actor == "system:retention"
    assert certificate.period == "2026-12"
    with pytest.raises(KeyDestroyed) as caught:
        keystore.unwrap_data_key(
            PRACTICE, DataClass.RECORDINGS, "call-1", wrapped, "2026-12"
        )
    assert caught.value.certificate_id == certificate.certificate_id
    bucket = keystore_root / PRACTICE / "recordings" / "2026-12"
    assert sorted(p.name for p in bucket.iterdir()) == [
        "v000001.destroyed",
        "v000002.destroyed",
    ]
    assert (
        json.loads((bucket / "v000001.destroyed").read_bytes())["certificate_id"]
        == certificate.certificate_id
    )


def test_destroyed_key_is_refused_in_another_process_that_cached_it(
    keystore: Keystore, kek: LocalKek, make_keystore: Callable[[LocalKek], Keystore]
) -> None:
    other = make_keystore(kek)
    other.current(PRACTICE, DataClass.FIELDS)

    keystore.destroy(PRACTICE, DataClass.FIELDS, reason="offboarding", actor="admin")

    with pytest.raises(KeyDestroyed):
        other.get(PRACTICE, DataClass.FIELDS, 1)


def test_destroyed_bucket_never_gets_a_fresh_key(keystore: Keystore) -> None:
    keystore.current(PRACTICE, DataClass.RECORDINGS, "2026-12")
    keystore.destroy(
        PRACTICE, DataClass.RECORDINGS, "2026-12", reason="retention", actor="system"
    )

    with pytest.raises(KeyDestroyed):
        keystore.current(PRACTICE, DataClass.RECORDINGS, "2026-12")
    with pytest.raises(KeyDestroyed):
        keystore.rotate(PRACTICE, DataClass.RECORDINGS, "2026-12")
    assert keystore.current(PRACTICE, DataClass.RECORDINGS, "2027-01").version == 1


def test_destroying_only_the_newest_version_is_refused(keystore: Keystore) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)
    keystore.rotate(PRACTICE, DataClass.FIELDS)

    with pytest.raises(ValueError, match="newest"):
        keystore.destroy(
            PRACTICE, DataClass.FIELDS, reason="r", actor="a", versions=(2,)
        )


def test_unknown_version_is_key_not_found(keystore: Keystore) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)

    with pytest.raises(KeyNotFound):
        keystore.get(PRACTICE, DataClass.FIELDS, 7)
    with pytest.raises(KeyNotFound):
        keystore.destroy(PRACTICE, DataClass.BACKUPS, reason="r", actor="a")


def test_rotation_after_retiring_old_versions_never_reuses_a_number(
    keystore: Keystore,
) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)
    keystore.rotate(PRACTICE, DataClass.FIELDS)
    keystore.destroy(PRACTICE, DataClass.FIELDS, reason="r", actor="a", versions=(1,))

    assert keystore.rotate(PRACTICE, DataClass.FIELDS).version == 3


def test_list_reports_active_and_destroyed_versions_without_secrets(
    keystore: Keystore,
) -> None:
    keystore.current(PRACTICE, DataClass.FIELDS)
    keystore.current(PRACTICE, DataClass.RECORDINGS, "2026-11")
    keystore.current(OTHER_PRACTICE, DataClass.FIELDS)
    certificate = keystore.destroy(
        PRACTICE, DataClass.RECORDINGS, "2026-11", reason="r", actor="a"
    )

    infos = keystore.list(PRACTICE)

    assert [(i.data_class, i.period, i.version, i.state) for i in infos] == [
        (DataClass.FIELDS, None, 1, "active"),
        (DataClass.RECORDINGS, "2026-11", 1, "destroyed"),
    ]
    assert infos[0].created_at == "2026-12-15T09:30:00+00:00"
    assert infos[1].certificate_id == certificate.certificate_id
    assert len(keystore.list()) == 3
