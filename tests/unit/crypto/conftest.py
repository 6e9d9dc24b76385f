"""Fixtures for the cryptographic core: a local KEK, a keystore, a clock."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpetua.crypto.kek import LocalKek
from perpetua.crypto.keystore import Keystore


@pytest.fixture
def clock() -> Callable[[], datetime]:
    """A fixed clock: every timestamp the keystore writes is predictable."""
    return lambda: datetime(2026, 12, 15, 9, 30, tzinfo=UTC)


@pytest.fixture
def kek() -> LocalKek:
    return LocalKek(secrets.token_bytes(32))


@pytest.fixture
def keystore_root(tmp_path: Path) -> Path:
    return tmp_path / "keystore"


@pytest.fixture
def keystore(
    keystore_root: Path, kek: LocalKek, clock: Callable[[], datetime]
) -> Keystore:
    return Keystore(keystore_root, kek, now=clock)


@pytest.fixture
def make_keystore(
    keystore_root: Path, clock: Callable[[], datetime]
) -> Callable[[LocalKek], Keystore]:
    """A second keystore over the same files, as another process would see it."""

    def build(kek: LocalKek) -> Keystore:
        return Keystore(keystore_root, kek, now=clock)

    return build
