"""Single-use recovery codes: shape, entropy, hashing and matching."""

from __future__ import annotations

import math
import re

import pytest
from argon2 import PasswordHasher

from perpetua.identity import recovery_codes
from perpetua.identity.errors import RecoveryCodeMalformed
from perpetua.identity.passwords import Argon2Profile, make_hasher
from perpetua.identity.recovery_codes import (
    find_match,
    generate_codes,
    hash_code,
    normalize,
)

DISPLAY_SHAPE = re.compile(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}")


@pytest.fixture
def fast() -> PasswordHasher:
    return make_hasher(Argon2Profile(time_cost=1, memory_cost_kib=8, parallelism=1))


def test_ten_distinct_codes_in_display_shape() -> None:
    codes = generate_codes()

    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(DISPLAY_SHAPE.fullmatch(code) for code in codes)


def test_each_code_carries_at_least_50_bits() -> None:
    alphabet_size = len(recovery_codes._ALPHABET)
    length = len(normalize(generate_codes(1)[0]))

    assert alphabet_size == 32
    assert length * math.log2(alphabet_size) >= 50


def test_codes_use_the_whole_alphabet() -> None:
    # Would fail if generation drew from a narrower set than the one counted above.
    seen = {c for code in generate_codes(200) for c in normalize(code)}

    assert seen == set(recovery_codes._ALPHABET)


def test_normalize_forgives_case_separators_and_look_alikes() -> None:
    assert normalize("  ABCDE-1O1IL ") == "abcde10111"
    assert normalize("abcde 10111") == "abcde10111"
    assert normalize("abcde10111") == "abcde10111"


@pytest.mark.parametrize("typed", ["", "abcde-1234", "abcde-123456", "abcde-1234u"])
def test_normalize_refuses_what_cannot_be_a_code(typed: str) -> None:
    with pytest.raises(RecoveryCodeMalformed) as caught:
        normalize(typed)

    assert caught.value.code == "recovery_code_malformed"


def test_production_hash_is_argon2id() -> None:
    assert hash_code("abcde-12345").startswith("$argon2id$v=19$m=16384,t=1,p=1$")


def test_stored_hash_does_not_contain_the_code(fast: PasswordHasher) -> None:
    assert "abcde12345" not in hash_code("abcde-12345", hasher=fast)


def test_typed_code_finds_its_index(fast: PasswordHasher) -> None:
    codes = generate_codes()
    stored = [hash_code(code, hasher=fast) for code in codes]

    typed = codes[7].upper().replace("-", " ")

    assert find_match(typed, stored, hasher=fast) == 7


def test_unknown_code_matches_nothing(fast: PasswordHasher) -> None:
    codes = generate_codes(11)
    stored = [hash_code(code, hasher=fast) for code in codes[:10]]

    assert find_match(codes[10], stored, hasher=fast) is None


def test_used_code_matches_nothing_once_removed(fast: PasswordHasher) -> None:
    codes = generate_codes()
    stored = [hash_code(code, hasher=fast) for code in codes]

    index = find_match(codes[3], stored, hasher=fast)
    assert index is not None
    del stored[index]

    assert find_match(codes[3], stored, hasher=fast) is None


def test_malformed_input_matches_nothing(fast: PasswordHasher) -> None:
    stored = [hash_code("abcde-12345", hasher=fast)]

    assert find_match("abcde-1234", stored, hasher=fast) is None


def test_corrupt_stored_hash_is_skipped(fast: PasswordHasher) -> None:
    stored = ["garbage", hash_code("abcde-12345", hasher=fast)]

    assert find_match("abcde-12345", stored, hasher=fast) == 1
