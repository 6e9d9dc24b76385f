"""Specification of signed notes and checkpoints, pinned to published Go vectors."""

from datetime import UTC, datetime

import pytest

from perpetua.audit.checkpoint import (
    Checkpoint,
    InvalidNoteSignature,
    MalformedCheckpoint,
    MalformedKey,
    MalformedNote,
    NoteSigner,
    NoteVerifier,
    UnverifiedNote,
    format_checkpoint,
    generate_key,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
)
from perpetua.audit.merkle import EMPTY_ROOT

# Published in golang.org/x/mod/sumdb/note's tests.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = (
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGU"
    "gYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1a"
    "GrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

ORIGIN = "perpetua.example/practice/0b6a1a5e-0000-4000-8000-000000000001"


def test_published_verifier_key_parses_and_round_trips() -> None:
    verifier = NoteVerifier.from_key(PETER_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == 0xC74F20A3
    assert verifier.to_key() == PETER_VKEY


def test_published_signer_key_derives_the_published_verifier_key() -> None:
    signer = NoteSigner.from_key(PETER_SKEY)
    assert signer.verifier.to_key() == PETER_VKEY
    assert "AYEK" not in repr(signer)


def test_signing_the_published_text_reproduces_the_published_note_byte_for_byte() -> (
    None
):
    signer = NoteSigner.from_key(PETER_SKEY)
    assert sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG


def test_published_note_verifies_and_unknown_witness_signature_is_ignored() -> None:
    peter = NoteVerifier.from_key(PETER_VKEY)
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [peter])
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.name for s in note.unverified] == ["EnochRoot"]


def test_both_published_signatures_verify_when_both_keys_are_known() -> None:
    keys = [NoteVerifier.from_key(PETER_VKEY), NoteVerifier.from_key(ENOCH_VKEY)]
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), keys)
    assert len(note.signatures) == 2


def test_note_without_any_known_signature_is_rejected() -> None:
    with pytest.raises(UnverifiedNote):
        open_note(TEXT + "\n" + ENOCH_SIG, [NoteVerifier.from_key(PETER_VKEY)])


def test_bad_signature_from_a_known_key_rejects_the_whole_note() -> None:
    tampered = PETER_SIG[:60] + "ABCD" + PETER_SIG[64:]
    with pytest.raises(InvalidNoteSignature):
        open_note(TEXT + "\n" + tampered, [NoteVerifier.from_key(PETER_VKEY)])


def test_altered_text_fails_the_published_signature() -> None:
    with pytest.raises(InvalidNoteSignature):
        open_note(
            TEXT.replace("problem", "Problem", 1) + "\n" + PETER_SIG,
            [NoteVerifier.from_key(PETER_VKEY)],
        )


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGU=\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + "- PeterNeumann" + PETER_SIG[len("— PeterNeumann") :],
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\n" + PETER_SIG.replace("AM=", "AN="),
    ],
)
def test_malformed_notes_are_rejected(message: str) -> None:
    with pytest.raises(MalformedNote):
        open_note(message, [NoteVerifier.from_key(PETER_VKEY)])


def test_invalid_utf8_note_is_rejected() -> None:
    with pytest.raises(MalformedNote):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [])


def test_every_mangling_of_the_published_verifier_key_is_refused() -> None:
    raw = PETER_VKEY.encode()
    for i in range(len(raw)):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(MalformedKey):
                    NoteVerifier.from_key(raw[i:j].decode())
    for i in range(len(raw)):
        mangled = bytearray(raw)
        mangled[i] += 1
        with pytest.raises(MalformedKey):
            NoteVerifier.from_key(mangled.decode())


def test_every_byte_change_of_the_published_signer_key_is_refused() -> None:
    raw = PETER_SKEY.encode()
    for i in range(len(raw)):
        mangled = bytearray(raw)
        mangled[i] += 1
        with pytest.raises(MalformedKey):
            NoteSigner.from_key(mangled.decode())
    with pytest.raises(MalformedKey):
        NoteSigner.from_key(PETER_SKEY[:-1])


def test_generated_keys_sign_and_verify_and_have_matching_ids() -> None:
    skey, vkey = generate_key(ORIGIN)
    signer = NoteSigner.from_key(skey)
    verifier = NoteVerifier.from_key(vkey)
    assert verifier.key_id == key_id(ORIGIN, verifier.public_key)
    note = sign_note("hello\n", [signer])
    assert open_note(note, [verifier]).text == "hello\n"


def test_key_names_with_spaces_or_plus_are_refused() -> None:
    for name in ["", "a b", "a+b"]:
        with pytest.raises(MalformedKey):
            generate_key(name)


def test_checkpoint_text_follows_the_tlog_checkpoint_layout() -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    checkpoint = Checkpoint(ORIGIN, 20852163, b"\x01" * 32, moment)
    assert format_checkpoint(checkpoint) == (
        f"{ORIGIN}\n20852163\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
        "time 2024-05-01T12:00:00.000000Z\n"
    )
    assert parse_checkpoint(format_checkpoint(checkpoint)) == checkpoint


def test_signed_checkpoint_opens_with_its_time_and_origin() -> None:
    skey, vkey = generate_key(ORIGIN)
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    note = sign_checkpoint(
        Checkpoint(ORIGIN, 5, EMPTY_ROOT, moment), NoteSigner.from_key(skey)
    )
    opened = open_checkpoint(note, NoteVerifier.from_key(vkey), origin=ORIGIN)
    assert (opened.size, opened.root, opened.time) == (5, EMPTY_ROOT, moment)


def test_checkpoint_of_another_log_is_refused() -> None:
    skey, vkey = generate_key(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, EMPTY_ROOT), NoteSigner.from_key(skey))
    with pytest.raises(MalformedCheckpoint):
        open_checkpoint(note, NoteVerifier.from_key(vkey), origin=ORIGIN + "x")


@pytest.mark.parametrize(
    "text",
    [
        "origin\n5\n",
        "origin\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n+5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",
        "origin\n5\nAAAA\n",
        "origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\nextra\n",
        "origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime yesterday\n",
    ],
)
def test_malformed_checkpoint_text_is_refused(text: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        parse_checkpoint(text)


def test_foreign_extension_lines_are_kept_and_signed() -> None:
    text = f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nwitness x\n"
    checkpoint = parse_checkpoint(text)
    assert checkpoint.extensions == ("witness x",)
    assert format_checkpoint(checkpoint) == text
