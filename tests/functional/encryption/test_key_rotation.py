"""Rotation adds a key version that new writes use while old data still decrypts;
`keys rewrap` moves every data key to the newest version without touching the
blobs, resumes after an interruption, and leaves old versions safe to retire."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from tests.conftest import scratch_dir
from tests.functional.encryption.helpers import (
    MARCH,
    Blobs,
    make_practice,
    new_keystore,
    reader,
    run_with_store,
    synthetic_audio,
    system,
)

from perpetua.cli.main import main
from perpetua.crypto.keystore import DataClass

DOCUMENTS = DataClass.DOCUMENTS


class Interrupted(Exception):
    pass


def test_rotate_then_rewrap_resumes_after_interruption(
    blob_target, monkeypatch, capsys
):
    practice = make_practice(blob_target)
    payloads = {uuid.uuid4(): synthetic_audio(6000, seed=n) for n in range(5)}

    async def store_all(blobs: Blobs):
        for oid, data in payloads.items():
            await blobs.store.put(
                system(practice), DataClass.RECORDINGS, oid, reader(data), at=MARCH
            )
        await blobs.store.put(
            system(practice), DOCUMENTS, uuid.uuid4(), reader(b"doc" * 900),
            at=MARCH,
        )  # fmt: skip
        return {oid: blobs.path(practice, "recordings", "2026-03", oid).read_bytes()
                for oid in payloads}  # fmt: skip

    root = scratch_dir("perpetua-rotate-")
    stored_before = run_with_store(blob_target, store_all, root=root)

    # The CLI reads the keystore from the data directory and talks to the test
    # database as an external server.
    monkeypatch.setenv("DATABASE_URL", blob_target.url("owner"))
    monkeypatch.setenv("SERVICE_DATABASE_URL", blob_target.url("service"))
    args = ["--data-dir", str(root)]
    assert main(["keys", "rotate", "--practice", str(practice), "--class",
                 "recordings", *args]) == 0  # fmt: skip
    assert "2026-03 -> version 2" in capsys.readouterr().out

    async def interrupted(blobs: Blobs):
        seen = []

        def stop_after_first_batch(n: int) -> None:
            seen.append(n)
            raise Interrupted

        with pytest.raises(Interrupted):
            await blobs.store.rewrap(
                practice, on_progress=stop_after_first_batch, batch=2
            )
        new = uuid.uuid4()
        await blobs.store.put(
            system(practice), DataClass.RECORDINGS, new, reader(b"n" * 4000), at=MARCH
        )
        return seen, (await blobs.store.describe(system(practice), new)).key_version

    seen, new_version = run_with_store(blob_target, interrupted, root=root)
    assert seen == [2]
    assert new_version == 2  # new writes use the new version at once

    assert main(["keys", "rewrap", "--practice", str(practice), *args]) == 0
    assert "rewrapped 3 data keys" in capsys.readouterr().out
    assert main(["keys", "rewrap", *args]) == 0
    assert "rewrapped 0 data keys" in capsys.readouterr().out

    # Version 1 now wraps nothing: retire it, and everything still reads.
    keystore = _keystore(root)
    keystore.destroy(
        practice, DataClass.RECORDINGS, "2026-03", reason="retired after rewrap",
        actor="test", versions=(1,),
    )  # fmt: skip

    async def read_all(blobs: Blobs):
        out = {}
        for oid in payloads:
            sink = io.BytesIO()
            await blobs.store.read_into(system(practice), oid, sink)
            ref = await blobs.store.describe(system(practice), oid)
            out[oid] = (sink.getvalue(), ref.key_version)
        return out

    read = run_with_store(blob_target, read_all, root=root)
    assert read == {oid: (data, 2) for oid, data in payloads.items()}
    # The blobs themselves were never rewritten.
    for oid, before in stored_before.items():
        path = root / "blobs" / str(practice) / "recordings" / "2026-03" / str(oid)
        assert path.read_bytes() == before

    assert main(["keys", "list", "--practice", str(practice), *args]) == 0
    listing = capsys.readouterr().out
    assert "destroyed" in listing
    assert "documents" in listing


def _keystore(root):
    return new_keystore(root / "keys")


def test_rotate_refuses_a_practice_id_that_is_not_a_uuid(capsys):
    code = main(["keys", "rotate", "--practice", "../etc", "--data-dir",
                 str(scratch_dir("perpetua-rotate-bad-"))])  # fmt: skip
    assert code == 2
    assert "UUID" in capsys.readouterr().err


def test_old_version_still_decrypts_before_rewrap(blob_target):
    practice = make_practice(blob_target)
    oid = uuid.uuid4()

    async def body(blobs: Blobs):
        await blobs.store.put(
            system(practice), DOCUMENTS, oid, reader(b"v1" * 3000), at=MARCH
        )
        blobs.keystore.rotate(practice, DOCUMENTS)
        sink = io.BytesIO()
        await blobs.store.read_into(system(practice), oid, sink)
        return sink.getvalue(), (await blobs.store.describe(system(practice), oid))

    data, ref = run_with_store(blob_target, body)
    assert data == b"v1" * 3000
    assert (ref.key_bucket, ref.key_version) == ("_", 1)
    assert ref.created_at == MARCH
    assert ref.created_at.tzinfo is not None
    assert isinstance(ref.created_at, dt.datetime)


def test_rotate_leaves_search_and_audit_signing_keys_alone(capsys):
    root = scratch_dir("perpetua-rotate-classes-")
    keystore = new_keystore(root / "keys")
    practice = str(uuid.uuid4())
    for data_class in (
        DataClass.FIELDS,
        DataClass.BLIND_INDEX,
        DataClass.AUDIT_SIGNING,
    ):
        keystore.current(practice, data_class)

    assert main(["keys", "rotate", "--data-dir", str(root)]) == 0
    assert f"rotated {practice} fields -> version 2" in capsys.readouterr().out
    versions = {
        (str(info.data_class), info.version)
        for info in new_keystore(root / "keys").list()
    }
    assert ("fields", 2) in versions
    assert ("blind_index", 2) not in versions
    assert ("audit_signing", 2) not in versions
    with pytest.raises(SystemExit):
        main(["keys", "rotate", "--class", "blind_index", "--data-dir", str(root)])
