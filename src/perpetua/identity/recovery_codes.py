"""Guards the way back in when the second factor is lost: single-use recovery codes.

A user receives ten codes once, at enrolment, and each opens one session. A code is
ten characters of Crockford's base32 (50 random bits), shown as `abcde-12345`; its
alphabet leaves out I, L, O and U, and reading accepts the look-alikes in their
place, so a code copied by hand from paper still works.

Only hashes are stored. Fifty bits is too little for a fast hash: an attacker with
a copy of the database could try every code against SHA-256 within days on a few
GPUs. Each code is therefore hashed with argon2id under a light profile (one pass
over 16 MiB, about 18 ms), which puts an exhaustive search out of reach while
keeping a check of all ten codes well under a second. The caller deletes the hash
at the index `find_match` returns, in the same transaction that signs the user in,
and refuses the sign-in if that row was already gone: two requests racing with
the same code must not both succeed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from perpetua.identity.errors import RecoveryCodeMalformed
from perpetua.identity.passwords import Argon2Profile, make_hasher

__all__ = [
    "CODE_COUNT",
    "RECOVERY_PROFILE",
    "find_match",
    "generate_codes",
    "hash_code",
    "normalize",
]

CODE_COUNT = 10
_CODE_LENGTH = 10
_GROUP = 5

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LOOK_ALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})
_SEPARATORS = str.maketrans("", "", " -\t")

RECOVERY_PROFILE = Argon2Profile(time_cost=1, memory_cost_kib=16 * 1024, parallelism=1)
_recovery_hasher = make_hasher(RECOVERY_PROFILE)


def generate_codes(count: int = CODE_COUNT) -> list[str]:
    """`count` distinct new codes, formatted for display as `abcde-12345`."""
    codes: set[str] = set()
    while len(codes) < count:
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
        codes.add(f"{raw[:_GROUP]}-{raw[_GROUP:]}")
    return sorted(codes)


def normalize(code: str) -> str:
    """The canonical form of a typed code: ten lowercase characters, no separator.

    Raises `RecoveryCodeMalformed` if it cannot be a recovery code.
    """
    canonical = code.strip().lower().translate(_SEPARATORS).translate(_LOOK_ALIKES)
    if len(canonical) != _CODE_LENGTH or any(c not in _ALPHABET for c in canonical):
        raise RecoveryCodeMalformed()
    return canonical


def hash_code(code: str, *, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash to store for `code` (display or typed form)."""
    return (hasher or _recovery_hasher).hash(normalize(code))


def find_match(
    code: str, stored_hashes: Sequence[str], *, hasher: PasswordHasher | None = None
) -> int | None:
    """The index in `stored_hashes` of the hash that `code` matches, or None."""
    hasher = hasher or _recovery_hasher
    try:
        canonical = normalize(code)
    except RecoveryCodeMalformed:
        return None

    # Every stored hash is checked even after a match, and argon2 compares each tag
    # in constant time, so the time taken does not depend on which code was used.
    found: int | None = None
    for index, stored in enumerate(stored_hashes):
        try:
            hasher.verify(stored, canonical)
        except (VerificationError, InvalidHashError):
            continue
        if found is None:
            found = index
    return found
