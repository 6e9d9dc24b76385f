"""Specification of the local key encryption key (file or environment)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from perpetua.crypto.errors import DecryptionFailed, KekUnavailable
from perpetua.crypto.kek import LOCAL_KEK_ENV, LOCAL_KEK_FILENAME, LocalKek


def test_local_kek_file_is_created_0600_on_first_use(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    kek = LocalKek.load_or_create(data_dir, env={})

    path = data_dir / LOCAL_KEK_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes())) == 32
    assert kek.kek_id.startswith("local:")


def test_local_kek_file_is_created_0600_even_with_a_permissive_umask(
    tmp_path: Path,
) -> None:
    previous = os.umask(0)
    try:
        LocalKek.load_or_create(tmp_path, env={})
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / LOCAL_KEK_FILENAME).stat().st_mode) == 0o600


def test_local_kek_file_is_reused_not_replaced(tmp_path: Path) -> None:
    first = LocalKek.load_or_create(tmp_path, env={})
    second = LocalKek.load_or_create(tmp_path, env={})

    wrapped = first.wrap(b"class key", b"ad")
    assert second.unwrap(wrapped, b"ad") == b"class key"
    assert first.kek_id == second.kek_id
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_local_kek_from_environment_wins_over_the_file(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    env = {LOCAL_KEK_ENV: base64.b64encode(key).decode()}

    kek = LocalKek.load_or_create(tmp_path, env=env)

    assert kek.unwrap(LocalKek(key).wrap(b"k", b"ad"), b"ad") == b"k"
    assert not (tmp_path / LOCAL_KEK_FILENAME).exists()


def test_local_kek_refuses_a_group_readable_file(tmp_path: Path) -> None:
    LocalKek.load_or_create(tmp_path, env={})
    (tmp_path / LOCAL_KEK_FILENAME).chmod(0o640)

    with pytest.raises(KekUnavailable, match="0600"):
        LocalKek.load_or_create(tmp_path, env={})


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_local_kek_refuses_a_malformed_environment_value(value: str) -> None:
    with pytest.raises(KekUnavailable):
        LocalKek.load_or_create(Path("/nonexistent"), env={LOCAL_KEK_ENV: value})


def test_wrong_kek_fails_to_unwrap() -> None:
    wrapped = LocalKek(secrets.token_bytes(32)).wrap(b"class key", b"ad")

    with pytest.raises(DecryptionFailed):
        LocalKek(secrets.token_bytes(32)).unwrap(wrapped, b"ad")


def test_unwrap_with_other_associated_data_fails() -> None:
    kek = LocalKek(secrets.token_bytes(32))
    wrapped = kek.wrap(b"class key", b"practice-a")

    with pytest.raises(DecryptionFailed):
        kek.unwrap(wrapped, b"practice-b")


def test_local_kek_repr_shows_no_key_material() -> None:
    key = secrets.token_bytes(32)

    text = repr(LocalKek(key))

    assert key.hex() not in text
    assert base64.b64encode(key).decode() not in text
