"""Guards the authenticator-app second factor: enrolment secrets and time-based
one-time codes (RFC 6238 over RFC 4226).

Codes are 6 digits over 30-second steps with HMAC-SHA-1, the only combination every
authenticator app honours; SHA-1's collision weakness does not affect HMAC. One
step of clock drift is forgiven either way. A step that has already signed the user
in, or any step before it, is refused, so an observed code cannot be reused. The
caller stores the step that `verify` returns with a conditional update (only if it
is greater than the stored one), so that two requests racing with the same code
cannot both succeed.

The shared secret is as sensitive as a password hash and more useful to a thief:
callers keep it encrypted at rest and never log it, nor the enrolment URI or QR code
that contain it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import struct
from urllib.parse import quote, urlencode

import segno

from perpetua.identity.errors import TotpCodeInvalid, TotpCodeReplayed

__all__ = [
    "DIGITS",
    "STEP_SECONDS",
    "code_at",
    "hotp",
    "new_secret",
    "provisioning_uri",
    "qr_svg",
    "require_valid_code",
    "step_at",
    "verify",
]

STEP_SECONDS = 30
DIGITS = 6
_ALGORITHM = "sha1"

# One step each way absorbs phone clocks that run a little fast or slow and a code
# typed just as it rolled over; more would widen the window for a stolen code.
_TOLERANCE_STEPS = 1

# RFC 4226 recommends at least 128 bits and advises 160, the size of a SHA-1 block.
_SECRET_BYTES = 20

_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_CODE_PATTERN = re.compile(r"[0-9]{6}")


def hotp(
    key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "sha1"
) -> str:
    """The RFC 4226 one-time code for `counter`, zero-padded to `digits` digits."""
    if not 0 <= counter < 2**64:
        raise ValueError("counter must fit in 8 unsigned bytes")
    if not 6 <= digits <= 8:
        raise ValueError("RFC 4226 codes have 6 to 8 digits")
    digest = hmac.new(key, struct.pack(">Q", counter), _ALGORITHMS[algorithm]).digest()

    # Dynamic truncation: the low nibble of the last byte picks four bytes, of which
    # the top bit is dropped so the value reads the same signed or unsigned.
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def new_secret() -> str:
    """A fresh 160-bit shared secret, base32-encoded without padding."""
    return base64.b32encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _decode_secret(secret: str) -> bytes:
    cleaned = "".join(secret.split()).upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def step_at(now: dt.datetime) -> int:
    """The 30-second step that contains `now`, counted from the Unix epoch."""
    # A naive datetime would be read in the server's local zone and shift every step.
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, now: dt.datetime) -> str:
    """The code an authenticator app shows at `now`."""
    return hotp(_decode_secret(secret), step_at(now))


def provisioning_uri(secret: str, account_name: str, issuer: str = "Perpetua") -> str:
    """The otpauth:// URI that authenticator apps scan to enrol `secret`."""
    # The label's colon separates issuer from account, so both parts are escaped
    # in full; the issuer parameter repeats it for apps that ignore the label.
    label = f"{quote(issuer, safe='')}:{quote(account_name, safe='')}"
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": _ALGORITHM.upper(),
            "digits": DIGITS,
            "period": STEP_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """An inline <svg> element drawing `uri` as a QR code.

    The markup is only a path of black modules, with no script, link, text or
    XML declaration, so it can be placed directly in the enrolment page. The page
    must be sent with `Cache-Control: no-store`, since the code embeds the secret.
    """
    qr = segno.make(uri, error="m", micro=False)
    svg: str = qr.svg_inline(scale=4, omitsize=True, dark="#000", light="#fff")
    return svg


def _matching_steps(key: bytes, code: str, current: int) -> list[int]:
    # Every candidate step is computed and compared, with no early exit, so the time
    # taken does not tell which step, if any, matched.
    candidates = range(current - _TOLERANCE_STEPS, current + _TOLERANCE_STEPS + 1)
    matches = []
    for step in candidates:
        if hmac.compare_digest(hotp(key, step).encode(), code.encode()):
            matches.append(step)
    return matches


def _clean_code(code: str) -> str | None:
    # Apps display codes as "123 456"; users paste them with the space.
    cleaned = "".join(code.split())
    return cleaned if _CODE_PATTERN.fullmatch(cleaned) else None


def verify(
    secret: str, code: str, *, now: dt.datetime, last_used_step: int | None
) -> int | None:
    """The step `code` belongs to if it is valid at `now` and newer than
    `last_used_step`; otherwise None."""
    try:
        return require_valid_code(secret, code, now=now, last_used_step=last_used_step)
    except TotpCodeInvalid:
        return None


def require_valid_code(
    secret: str, code: str, *, now: dt.datetime, last_used_step: int | None
) -> int:
    """Like `verify`, but raise `TotpCodeReplayed` for a code whose step was already
    used and `TotpCodeInvalid` for any other refusal."""
    cleaned = _clean_code(code)
    if cleaned is None:
        raise TotpCodeInvalid()

    matches = _matching_steps(_decode_secret(secret), cleaned, step_at(now))
    fresh = [
        step for step in matches if last_used_step is None or step > last_used_step
    ]
    if fresh:
        # Two steps can share a code by chance; the latest one is recorded so that
        # neither can be replayed.
        return max(fresh)
    if matches:
        raise TotpCodeReplayed()
    raise TotpCodeInvalid()
