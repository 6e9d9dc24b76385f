"""Guards the first factor: how passwords are hashed at rest, verified at sign-in, and
which new passwords are refused.

Hashing is argon2id. The production profile (3 passes over 64 MiB with 2 lanes) is
the second of the two settings recommended by RFC 9106, with 2 lanes rather than 4
to match the small hosts a practice runs on. It costs about 140 ms per verification
on two cores of a current server CPU, and every offline guess against a stolen
database costs the attacker as much. Memory, not time, is what hurts an attacker with
GPUs, so the memory setting is the one not to lower. Tests inject a cheap profile
through the `hasher` argument instead of changing the module.

The policy follows NIST SP 800-63B: a minimum length, a refusal list of passwords
attackers try first, no composition rules, no forced rotation. Passwords are
NFKC-normalised before hashing and before length is counted, so the same password
typed on two keyboards that encode accents differently still matches.
"""

from __future__ import annotations

import contextlib
import functools
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import NoReturn

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from perpetua.identity.errors import (
    InvalidCredentials,
    PasswordMatchesEmail,
    PasswordMatchesName,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
)

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "PRODUCTION_PROFILE",
    "Argon2Profile",
    "check_password_policy",
    "dummy_verify",
    "hash_password",
    "is_common_password",
    "make_hasher",
    "verify_password",
]

MIN_LENGTH = 12

# Long passphrases are welcome; the ceiling only bounds the work one request can ask
# of the normaliser and keeps the form from accepting a pasted document.
MAX_LENGTH = 1024

_COMMON_PASSWORDS_FILE = "common_passwords.txt"


@dataclass(frozen=True)
class Argon2Profile:
    """Cost parameters for argon2id; memory is in KiB as argon2 counts it."""

    time_cost: int
    memory_cost_kib: int
    parallelism: int


# Limitation: each verification holds 64 MiB while it runs, so N simultaneous
# sign-ins need N times that; bounding concurrency is the web layer's job.
PRODUCTION_PROFILE = Argon2Profile(
    time_cost=3, memory_cost_kib=64 * 1024, parallelism=2
)


def make_hasher(profile: Argon2Profile) -> PasswordHasher:
    """Build an argon2id hasher with a 16-byte salt and a 32-byte tag."""
    return PasswordHasher(
        time_cost=profile.time_cost,
        memory_cost=profile.memory_cost_kib,
        parallelism=profile.parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


_production_hasher = make_hasher(PRODUCTION_PROFILE)


def _normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """Return the argon2id hash (PHC string, salt included) to store for `password`."""
    return (hasher or _production_hasher).hash(_normalize(password))


def verify_password(
    *, password: str, password_hash: str, hasher: PasswordHasher | None = None
) -> bool:
    """Raise `InvalidCredentials` unless `password` matches; else return whether the
    stored hash was made with weaker parameters and should be replaced now."""
    hasher = hasher or _production_hasher

    # argon2 compares the tags in constant time. A hash we cannot parse is treated
    # like a wrong password: fail closed rather than let a corrupt row sign anyone in.
    try:
        hasher.verify(password_hash, _normalize(password))
    except (VerificationError, InvalidHashError) as exc:
        raise InvalidCredentials() from exc

    # The password is known to be right only now, which is the one moment a stronger
    # hash can be computed without asking the user again.
    return hasher.check_needs_rehash(password_hash)


def dummy_verify(
    password: str = "", *, hasher: PasswordHasher | None = None
) -> NoReturn:
    """Spend the time a real verification takes, then raise `InvalidCredentials`.

    Call it when the email is unknown, so that neither the response time nor the
    error reveals which addresses have accounts.
    """
    hasher = hasher or _production_hasher
    reference = _dummy_hash(
        hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len
    )
    with contextlib.suppress(VerificationError):
        hasher.verify(reference, _normalize(password))
    raise InvalidCredentials()


@functools.cache
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int, tag: int) -> str:
    # Made once per parameter set, with the same costs as real hashes, so that
    # verifying against it takes as long as verifying against a real one.
    hasher = PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=tag,
        salt_len=16,
        type=Type.ID,
    )
    return hasher.hash("perpetua: no account has this password hash")


def check_password_policy(
    password: str, *, email: str | None = None, name: str | None = None
) -> None:
    """Raise a `PasswordPolicyViolation` subclass if `password` may not be chosen."""
    normalized = _normalize(password)

    # Length is counted in code points after normalisation, so an accented letter
    # counts once whichever way the keyboard encoded it.
    if len(normalized) < MIN_LENGTH:
        raise PasswordTooShort(MIN_LENGTH)
    if len(normalized) > MAX_LENGTH:
        raise PasswordTooLong(MAX_LENGTH)

    folded = normalized.casefold()
    if email:
        address = _normalize(email).strip().casefold()
        local_part = address.rpartition("@")[0]
        if folded in {address, local_part}:
            raise PasswordMatchesEmail()
    if name:
        full_name = _normalize(name).strip().casefold()
        if folded in {full_name, "".join(full_name.split())}:
            raise PasswordMatchesName()

    if is_common_password(normalized):
        raise PasswordTooCommon()


def is_common_password(password: str) -> bool:
    """Whether `password` is on the shipped refusal list, ignoring case."""
    return _normalize(password).casefold() in _common_passwords()


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Read on first use rather than at import: most processes that import this
    # module only verify passwords and never need the list.
    text = (
        resources.files("perpetua.identity")
        .joinpath(_COMMON_PASSWORDS_FILE)
        .read_text(encoding="utf-8")
    )
    return frozenset(
        _normalize(line).casefold()
        for line in text.splitlines()
        if line and not line.startswith("#")
    )
