"""The released texts of the Business Associate Agreement.

Each version is a file in `templates/` named `baa-<version>.md`. Its SHA-256 is
computed from the file's bytes here and recorded in `app.baa_versions` by the
migration that releases it; a signature names the (version, digest) pair, so an
edited file cannot be signed until a new version is released and recorded.

Releasing a new version is therefore two files in one change: the new template
and a migration inserting its digest. Owners are then asked to sign it; the
version they signed before stays in force until they do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

_NAME = re.compile(r"^baa-(\d{4}-\d{2})\.md$")


@dataclass(frozen=True)
class Agreement:
    version: str
    text: str
    sha256: str


def _read(folder: Traversable | Path) -> dict[str, Agreement]:
    found: dict[str, Agreement] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = _NAME.match(entry.name)
        if not match:
            continue
        raw = entry.read_bytes()
        found[match[1]] = Agreement(
            version=match[1],
            text=raw.decode("utf-8"),
            sha256=hashlib.sha256(raw).hexdigest(),
        )
    return found


@cache
def released() -> dict[str, Agreement]:
    """Every version in the repository, oldest first."""
    return _read(resources.files("perpetua.contracts").joinpath("templates"))


def current() -> Agreement:
    """The version owners are asked to sign now: the newest released."""
    versions = released()
    return versions[max(versions)]


class Library:
    """The released texts a contracts service offers: the repository's own, or
    another folder of `baa-<version>.md` files (a deployment's, or a test's)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._versions = released() if folder is None else _read(folder)
        if not self._versions:
            raise ValueError("no agreement versions in the folder")

    def released(self) -> dict[str, Agreement]:
        return dict(self._versions)

    def current(self) -> Agreement:
        return self._versions[max(self._versions)]

    def get(self, version: str) -> Agreement | None:
        return self._versions.get(version)
