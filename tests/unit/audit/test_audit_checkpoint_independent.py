"""A checkpoint Perpetua signs is a valid C2SP signed note and tlog-checkpoint, as
judged by an independent reading of the specifications (``c2sp_reference``) that
is itself pinned to the vectors published with golang.org/x/mod/sumdb/note."""

from datetime import UTC, datetime

import pytest
from tests.unit.audit.c2sp_reference import (
    compute_key_id,
    open_signed_note,
    parse_checkpoint_body,
    parse_verifier_key,
)

from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    generate_key,
    sign_checkpoint,
)
from perpetua.audit.merkle import root_from_leaf_hashes
from perpetua.audit.sealing import signer_for
from perpetua.crypto.keystore import ClassKey, DataClass

# Published in golang.org/x/mod/sumdb/note's tests (note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
SIGNED = (
    TEXT
    + "\n"
    + "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGU"
    "gYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    + "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1a"
    "GrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"
ORIGIN = f"perpetua.example/practice/{PRACTICE}"


def test_reference_computes_the_published_key_ids_from_the_spec() -> None:
    peter = parse_verifier_key(PETER_VKEY)
    enoch = parse_verifier_key(ENOCH_VKEY)
    assert peter.key_id.hex() == "c74f20a3"
    assert enoch.key_id.hex() == "af0cfe78"
    assert compute_key_id("PeterNeumann", peter.public_key) == peter.key_id


def test_reference_verifies_the_published_note_with_each_published_key() -> None:
    assert open_signed_note(SIGNED, parse_verifier_key(PETER_VKEY)) == TEXT
    assert open_signed_note(SIGNED, parse_verifier_key(ENOCH_VKEY)) == TEXT


def test_reference_rejects_the_published_note_with_one_byte_changed() -> None:
    altered = SIGNED.replace("cryptography", "cryptographY", 1)
    assert open_signed_note(altered, parse_verifier_key(PETER_VKEY)) == ""


def sealer_signer() -> NoteSigner:
    """The signer the sealing job derives for one practice's log."""
    class_key = ClassKey(PRACTICE, DataClass.AUDIT_SIGNING, None, 1, b"\x42" * 32)
    return signer_for(class_key, ORIGIN)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_sealer_checkpoint_is_a_valid_signed_note_and_tlog_checkpoint(
    size: int,
) -> None:
    signer = sealer_signer()
    root = root_from_leaf_hashes([bytes([n % 256]) * 32 for n in range(size)])
    moment = datetime(2026, 12, 3, 16, 0, 0, 250000, tzinfo=UTC)
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root, moment), signer)

    key = parse_verifier_key(signer.verifier.to_key())
    assert key.name == ORIGIN
    body = parse_checkpoint_body(open_signed_note(note, key))
    assert (body.origin, body.size, body.root) == (ORIGIN, size, root)
    assert body.extensions == ["time 2026-12-03T16:00:00.250000Z"]

    # The key id in the signature line is the spec's, computed from the raw key.
    signature_line = note.rstrip("\n").rsplit("\n", 1)[1]
    assert signature_line.startswith(f"\u2014 {ORIGIN} ")
    assert key.key_id == compute_key_id(ORIGIN, key.public_key)


def test_sealer_checkpoint_fails_the_reference_when_its_size_is_changed() -> None:
    signer = sealer_signer()
    note = sign_checkpoint(
        Checkpoint(ORIGIN, 5, root_from_leaf_hashes([b"\x01" * 32] * 5)), signer
    )
    forged = note.replace(f"{ORIGIN}\n5\n", f"{ORIGIN}\n6\n", 1)
    assert open_signed_note(forged, parse_verifier_key(signer.verifier.to_key())) == ""


def test_checkpoint_signed_with_another_key_is_not_accepted_by_the_reference() -> None:
    other, _ = generate_key(ORIGIN)
    note = sign_checkpoint(
        Checkpoint(ORIGIN, 1, b"\x00" * 32), NoteSigner.from_key(other)
    )
    with pytest.raises(AssertionError, match="no signature by the expected key"):
        open_signed_note(note, parse_verifier_key(sealer_signer().verifier.to_key()))
