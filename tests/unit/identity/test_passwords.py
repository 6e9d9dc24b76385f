"""Password hashing, verification and the choice policy."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from perpetua.identity import passwords
from perpetua.identity.errors import (
    InvalidCredentials,
    PasswordMatchesEmail,
    PasswordMatchesName,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
)
from perpetua.identity.passwords import (
    PRODUCTION_PROFILE,
    Argon2Profile,
    check_password_policy,
    dummy_verify,
    hash_password,
    is_common_password,
    make_hasher,
    verify_password,
)

GOOD_PASSWORD = "tangerine ladder quietly 47"


@pytest.fixture
def fast() -> PasswordHasher:
    return make_hasher(Argon2Profile(time_cost=1, memory_cost_kib=8, parallelism=1))


def test_production_profile_is_argon2id_with_64_mib() -> None:
    stored = hash_password(GOOD_PASSWORD)

    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    assert PRODUCTION_PROFILE.memory_cost_kib == 64 * 1024


def test_correct_password_verifies_without_rehash(fast: PasswordHasher) -> None:
    stored = hash_password(GOOD_PASSWORD, hasher=fast)

    assert (
        verify_password(password=GOOD_PASSWORD, password_hash=stored, hasher=fast)
        is False
    )


def test_wrong_password_raises_invalid_credentials(fast: PasswordHasher) -> None:
    stored = hash_password(GOOD_PASSWORD, hasher=fast)

    with pytest.raises(InvalidCredentials) as caught:
        verify_password(password=GOOD_PASSWORD + "x", password_hash=stored, hasher=fast)

    assert caught.value.code == "invalid_credentials"
    assert GOOD_PASSWORD not in str(caught.value)


def test_corrupt_stored_hash_fails_closed(fast: PasswordHasher) -> None:
    with pytest.raises(InvalidCredentials):
        verify_password(password=GOOD_PASSWORD, password_hash="not-a-hash", hasher=fast)


def test_hash_made_with_weaker_profile_asks_for_rehash(fast: PasswordHasher) -> None:
    stored = hash_password(GOOD_PASSWORD, hasher=fast)
    stronger = make_hasher(
        Argon2Profile(time_cost=2, memory_cost_kib=16, parallelism=1)
    )

    assert verify_password(
        password=GOOD_PASSWORD, password_hash=stored, hasher=stronger
    )


def test_same_salt_is_never_reused(fast: PasswordHasher) -> None:
    assert hash_password(GOOD_PASSWORD, hasher=fast) != hash_password(
        GOOD_PASSWORD, hasher=fast
    )


def test_composed_and_decomposed_accents_verify_alike(fast: PasswordHasher) -> None:
    composed = unicodedata.normalize("NFC", "crème brûlée au café")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed

    stored = hash_password(composed, hasher=fast)

    assert (
        verify_password(password=decomposed, password_hash=stored, hasher=fast) is False
    )


def test_dummy_verify_raises_the_same_error_as_a_wrong_password(
    fast: PasswordHasher,
) -> None:
    with pytest.raises(InvalidCredentials):
        dummy_verify(GOOD_PASSWORD, hasher=fast)


def test_dummy_verify_takes_as_long_as_a_real_verification() -> None:
    # Production costs, so that hashing dominates the timing and noise stays small.
    stored = hash_password(GOOD_PASSWORD)

    def wrong_password() -> None:
        verify_password(password="wrong", password_hash=stored)

    def unknown_email() -> None:
        dummy_verify("wrong")

    def fastest_of_three(attempt: Callable[[], None]) -> float:
        durations = []
        for _ in range(3):
            start = time.perf_counter()
            with pytest.raises(InvalidCredentials):
                attempt()
            durations.append(time.perf_counter() - start)
        return min(durations)

    with pytest.raises(InvalidCredentials):
        unknown_email()  # builds the cached reference hash outside the timing

    ratio = fastest_of_three(unknown_email) / fastest_of_three(wrong_password)

    assert 0.5 < ratio < 2.0


def test_twelve_code_points_is_enough() -> None:
    check_password_policy("zq7 vintage!")


def test_eleven_code_points_is_too_short() -> None:
    with pytest.raises(PasswordTooShort) as caught:
        check_password_policy("zq7 vintage")

    assert caught.value.code == "password_too_short"
    assert caught.value.min_length == 12
    assert "zq7" not in str(caught.value)


def test_length_counts_code_points_after_nfkc() -> None:
    # Eleven letters with combining accents are 22 code points before NFKC.
    decomposed = unicodedata.normalize("NFD", "éèêëéèêëéèê")
    assert len(decomposed) == 22

    with pytest.raises(PasswordTooShort):
        check_password_policy(decomposed)


def test_twelve_emoji_are_twelve_characters() -> None:
    check_password_policy("🦊🌵🎻🧭🪁🍋🦉🚲🧩🌋🎈🪴")


def test_overlong_password_is_refused() -> None:
    with pytest.raises(PasswordTooLong) as caught:
        check_password_policy("a long walk " * 100)

    assert caught.value.code == "password_too_long"


def test_no_composition_rules_for_a_long_lowercase_passphrase() -> None:
    check_password_policy("purple elephants rarely juggle")


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "PASSWORD1234",
        "qwertyuiop12",
        "Practice2024!",
        "Welcome12345",
        "letmein12345",
        "Summer2024!!",
        "111111111111",
        "1qaz2wsx3edc",
        "iloveyou1234",
    ],
)
def test_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(PasswordTooCommon) as caught:
        check_password_policy(password)

    assert caught.value.code == "password_too_common"
    assert password not in str(caught.value)


def test_common_list_is_substantial_and_loaded_once() -> None:
    first = passwords._common_passwords()

    assert len(first) > 5000
    assert passwords._common_passwords() is first
    assert all(entry == entry.casefold() for entry in first)


def test_uncommon_password_is_not_on_the_list() -> None:
    assert not is_common_password(GOOD_PASSWORD)


def test_password_equal_to_email_is_refused() -> None:
    with pytest.raises(PasswordMatchesEmail) as caught:
        check_password_policy(
            "Dr.Alvarez@clinic.example", email="dr.alvarez@clinic.example"
        )

    assert caught.value.code == "password_matches_email"


def test_password_equal_to_email_local_part_is_refused() -> None:
    with pytest.raises(PasswordMatchesEmail):
        check_password_policy(
            "Frontdesk.Westside", email="frontdesk.westside@clinic.example"
        )


def test_password_containing_but_not_equal_to_local_part_is_allowed() -> None:
    check_password_policy(
        "frontdesk.westside rides bikes", email="frontdesk.westside@clinic.example"
    )


def test_password_equal_to_name_is_refused_ignoring_spaces() -> None:
    with pytest.raises(PasswordMatchesName) as caught:
        check_password_policy("MargaretOkonkwo", name="Margaret Okonkwo")

    assert caught.value.code == "password_matches_name"
