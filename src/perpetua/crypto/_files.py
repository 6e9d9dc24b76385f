"""Durable, owner-only files for key material.

Guards the key files on disk: they are created with mode 0600 from the first
byte (never widened then narrowed), written completely and fsynced before they
become visible under their final name, and never replaced once published, so a
crash or a concurrent writer can leave a stray temporary file but never a
half-written or swapped key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "ensure_private_dir",
    "fsync_dir",
    "publish_exclusive",
    "read_private",
    "shred",
    "write_replace",
]

_PRIVATE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create `path` and its parents as 0700 directories if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename or link survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes) -> Path:
    # O_EXCL with a random name: never follow or reuse a file someone planted.
    tmp = directory / f".tmp-{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(tmp, flags, _PRIVATE)
    try:
        # The umask can only narrow the mode; set it exactly anyway.
        os.fchmod(fd, _PRIVATE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def publish_exclusive(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; raise FileExistsError if it exists.

    The link step is what makes two concurrent creators safe: exactly one wins,
    and the loser reads the winner's complete file.
    """
    tmp = _write_temp(path.parent, data)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_replace(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, replacing any previous content."""
    tmp = _write_temp(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_private(path: Path) -> bytes:
    """Read a key file, refusing one that other users could read or write."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise PermissionError(
                f"{path} must be a regular file with mode 0600 "
                f"(found {stat.S_IMODE(info.st_mode):04o})"
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def shred(path: Path) -> None:
    """Overwrite a file with random bytes, flush, then unlink it.

    Limitation: on copy-on-write or journaling file systems and on SSDs the old
    blocks may survive the overwrite; the guarantee that matters is that the
    KEK-wrapped copy is gone from the keystore (see docs/encryption.md).
    """
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            size = os.fstat(fd).st_size
            os.write(fd, secrets.token_bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        fsync_dir(path.parent)
