"""Secrets kept in the data directory (database passwords), created once with mode
0600 inside a 0700 folder and never printed, logged or passed on a command line."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def secrets_path(data_dir: Path) -> Path:
    path = data_dir / "secrets"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def read_or_create_secret(data_dir: Path, name: str) -> str:
    """Return the named secret, creating it atomically on first use."""
    path = secrets_path(data_dir) / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass

    value = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once must not each write a different value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    return value
