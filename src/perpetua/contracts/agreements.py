"""The released texts of the Business Associate Agreement.

Each version is a file in `templates/` named `baa-<version>.md`. Its SHA-256 is
computed from the file's bytes here and recorded in `app.baa_versions` by the
migration that releases it; a signature names the (version, digest) pair, so an
edited file cannot be signed until a new version is released and recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME = re.compile(r"^baa-(\d{4}-\d{2})\.md$")


@dataclass(frozen=True)
class Agreement:
    version: str
    text: str
    sha256: str


@cache
def released() -> dict[str, Agreement]:
    """Every version in the repository, oldest first."""
    found: dict[str, Agreement] = {}
    folder = resources.files("perpetua.contracts").joinpath("templates")
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


def current() -> Agreement:
    """The version owners are asked to sign now: the newest released."""
    versions = released()
    return versions[max(versions)]
