"""The export archive opens with its passphrase or random key and with nothing
else; a changed byte or a cut file is refused and leaves no plaintext behind.
Pure: no database, as on the practice's own machine."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from tests.conftest import scratch_dir

from perpetua.cli import main as cli
from perpetua.termination import archive

PASSPHRASE = "correct horse battery staple"
PLAINTEXT = b"PK synthetic zip bytes " * 5000


def _sealed(key: archive.ExportKey) -> bytes:
    out = io.BytesIO()
    archive.seal(key, io.BytesIO(PLAINTEXT), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def passphrase_archive() -> bytes:
    key = archive.ExportKey.from_passphrase(PASSPHRASE, uuid.uuid4(), uuid.uuid4())
    return _sealed(key)


def _open(data: bytes, secret: str) -> bytes:
    out = io.BytesIO()
    archive.open_archive(io.BytesIO(data), out, secret)
    return out.getvalue()


def test_passphrase_opens_and_nothing_else_does(passphrase_archive):
    assert PLAINTEXT not in passphrase_archive
    assert _open(passphrase_archive, PASSPHRASE) == PLAINTEXT
    with pytest.raises(archive.ArchiveError):
        _open(passphrase_archive, PASSPHRASE + "!")


def test_random_key_opens_and_a_passphrase_does_not():
    key = archive.ExportKey.random(uuid.uuid4(), uuid.uuid4())
    assert key.shown is not None
    sealed = _sealed(key)

    assert _open(sealed, key.shown) == PLAINTEXT
    with pytest.raises(archive.ArchiveError):
        _open(sealed, PASSPHRASE)
    other = archive.ExportKey.random(uuid.uuid4(), uuid.uuid4())
    assert other.shown is not None
    with pytest.raises(archive.ArchiveError):
        _open(sealed, other.shown)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:],  # scrypt salt
        lambda b: b[:70] + bytes([b[70] ^ 1]) + b[71:],  # export id
        lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:],  # last segment
        lambda b: b[: len(b) // 2],  # cut short
    ],
    ids=["salt", "export-id", "segment", "truncated"],
)
def test_damaged_archive_is_refused_and_leaves_no_output(
    passphrase_archive, damage, monkeypatch, capsys
):
    folder = scratch_dir("perpetua-export-")
    source = Path(folder) / "export.ppex"
    source.write_bytes(damage(passphrase_archive))
    target = Path(folder) / "export.zip"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSPHRASE + "\n"))

    code = cli.main(["export", "open", str(source)])

    assert code == 1
    assert not target.exists()
    assert "did not open" in capsys.readouterr().err


def test_short_passphrase_is_refused():
    with pytest.raises(archive.PassphraseTooShort):
        archive.ExportKey.from_passphrase("short", uuid.uuid4(), uuid.uuid4())


def _zip(files: dict[str, bytes], listed: dict[str, bytes]) -> bytes:
    manifest = {
        "counts": {},
        "media_included": False,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in listed.items()
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as made:
        for name, data in files.items():
            made.writestr(name, data)
        made.writestr("manifest.json", json.dumps(manifest))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("files", "listed", "opens"),
    [
        ({"patients.ndjson": b"{}\n"}, {"patients.ndjson": b"{}\n"}, True),
        ({"patients.ndjson": b"{}\n"}, {"patients.ndjson": b"[]\n"}, False),
        (
            {"patients.ndjson": b"{}\n", "extra.bin": b"x"},
            {"patients.ndjson": b"{}\n"},
            False,
        ),
        ({}, {"patients.ndjson": b"{}\n"}, False),
    ],
    ids=["as-listed", "changed-file", "unlisted-file", "missing-file"],
)
def test_a_zip_that_differs_from_its_manifest_is_refused(
    files, listed, opens, monkeypatch, capsys
):
    # Sealed by the archive's own writer, as the service writes a real export.
    key = archive.ExportKey.random(uuid.uuid4(), uuid.uuid4())
    assert key.shown is not None
    out = io.BytesIO()
    sealer = archive.begin(key, out)
    sealer.write(_zip(files, listed))
    sealer.close()
    folder = scratch_dir("perpetua-export-")
    source = Path(folder) / "export.ppex"
    source.write_bytes(out.getvalue())
    monkeypatch.setattr("sys.stdin", io.StringIO(key.shown + "\n"))

    code = cli.main(["export", "open", str(source)])

    err = capsys.readouterr().err
    assert code == (0 if opens else 1), err
    assert (Path(folder) / "export.zip").exists() is opens
    if not opens:
        assert "manifest" in err
