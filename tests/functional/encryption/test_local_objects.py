"""The local object folder: owner-only files, published whole or not at all, never
overwritten, and keys that cannot climb out of the folder."""

from __future__ import annotations

import stat

import pytest
from tests.conftest import scratch_dir

from perpetua.blobs import LocalObjects


def _read(store: LocalObjects, key: str) -> bytes:
    out = bytearray()
    with store.open(key) as source:
        buffer = bytearray(1000)
        while got := source.readinto(memoryview(buffer)):
            out += buffer[:got]
    return bytes(out)


def test_objects_are_private_and_write_once():
    store = LocalObjects(scratch_dir("perpetua-objects-") / "blobs")
    with store.write("p/recordings/2026-03/a") as sink:
        sink.write(memoryview(b"ciphertext"))
    path = store.root / "p/recordings/2026-03/a"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _read(store, "p/recordings/2026-03/a") == b"ciphertext"

    with pytest.raises(FileExistsError), store.write("p/recordings/2026-03/a") as s:
        s.write(memoryview(b"replacement"))
    assert _read(store, "p/recordings/2026-03/a") == b"ciphertext"
    assert [p.name for p in path.parent.iterdir()] == ["a"]


def test_a_failed_write_leaves_nothing():
    store = LocalObjects(scratch_dir("perpetua-objects-") / "blobs")

    def failing() -> None:
        with store.write("p/x") as sink:
            sink.write(memoryview(b"half"))
            raise OSError("source broke")

    with pytest.raises(OSError, match="source broke"):
        failing()
    assert list(store.keys("")) == []
    assert list((store.root / "p").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        store.size("p/x")


@pytest.mark.parametrize(
    "key", ["../escape", "/etc/passwd", "a/../../b", "a//b", "", ".hidden", "a b"]
)
def test_keys_cannot_leave_the_folder(key):
    store = LocalObjects(scratch_dir("perpetua-objects-") / "blobs")
    with pytest.raises(ValueError, match="object key"):
        store.size(key)
