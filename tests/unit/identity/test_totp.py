"""Authenticator-app codes: RFC test vectors, drift tolerance and replay refusal."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from perpetua.identity import totp
from perpetua.identity.errors import TotpCodeInvalid, TotpCodeReplayed

RFC_SEED_SHA1 = b"12345678901234567890"
RFC_SEED_SHA256 = b"12345678901234567890123456789012"
RFC_SEED_SHA512 = b"1234567890" * 6 + b"1234"

# RFC 6238 Appendix B: (Unix time, SHA-1, SHA-256, SHA-512), 8 digits.
RFC6238_VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]

# RFC 4226 Appendix D: counters 0 to 9 with the SHA-1 seed, 6 digits.
RFC4226_VECTORS = [
    "755224", "287082", "359152", "969429", "338314",
    "254676", "287922", "162583", "399871", "520489",
]  # fmt: skip

NOW = dt.datetime(2026, 1, 5, 9, 0, 10, tzinfo=dt.UTC)


def at_seconds(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), RFC6238_VECTORS)
def test_rfc6238_appendix_b_vectors(
    unix_time: int, sha1: str, sha256: str, sha512: str
) -> None:
    step = totp.step_at(at_seconds(unix_time))

    assert totp.hotp(RFC_SEED_SHA1, step, digits=8, algorithm="sha1") == sha1
    assert totp.hotp(RFC_SEED_SHA256, step, digits=8, algorithm="sha256") == sha256
    assert totp.hotp(RFC_SEED_SHA512, step, digits=8, algorithm="sha512") == sha512


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_VECTORS)))
def test_rfc4226_appendix_d_vectors(counter: int, expected: str) -> None:
    assert totp.hotp(RFC_SEED_SHA1, counter) == expected


def test_hotp_refuses_out_of_range_arguments() -> None:
    with pytest.raises(ValueError, match="counter"):
        totp.hotp(RFC_SEED_SHA1, -1)
    with pytest.raises(ValueError, match="digits"):
        totp.hotp(RFC_SEED_SHA1, 0, digits=5)


def test_new_secret_is_160_bits_of_base32() -> None:
    secret = totp.new_secret()

    assert len(base64.b32decode(secret)) == 20
    assert secret != totp.new_secret()


def test_codes_match_pyotp_over_many_steps() -> None:
    secret = totp.new_secret()
    reference = pyotp.TOTP(secret)

    for offset in range(0, 3600, 17):
        moment = NOW + dt.timedelta(seconds=offset)
        assert totp.code_at(secret, moment) == reference.at(moment)


def test_provisioning_uri_is_understood_by_pyotp() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "dr.alvarez@clinic.example")

    parsed = pyotp.parse_uri(uri)
    query = parse_qs(urlsplit(uri).query)

    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.name == "dr.alvarez@clinic.example"
    assert parsed.issuer == "Perpetua"
    assert parsed.digits == 6
    assert parsed.interval == 30
    assert query["algorithm"] == ["SHA1"]


def test_issuer_with_colon_cannot_forge_the_label() -> None:
    uri = totp.provisioning_uri(totp.new_secret(), "a:b@clinic.example", "Clinic: X")

    assert urlsplit(uri).path == "/Clinic%3A%20X:a%3Ab%40clinic.example"


def test_qr_svg_is_inline_markup_without_script() -> None:
    svg = totp.qr_svg(totp.provisioning_uri(totp.new_secret(), "frontdesk"))

    assert svg.startswith("<svg ")
    assert svg.rstrip().endswith("</svg>")
    assert "viewBox" in svg
    lowered = svg.lower()
    for forbidden in ("<script", "<?xml", "<!doctype", "href", "onload", "<text"):
        assert forbidden not in lowered


def test_current_code_is_accepted_and_returns_its_step() -> None:
    secret = totp.new_secret()

    step = totp.verify(secret, totp.code_at(secret, NOW), now=NOW, last_used_step=None)

    assert step == totp.step_at(NOW)


def test_code_with_a_space_in_the_middle_is_accepted() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, NOW)

    step = totp.verify(secret, f"{code[:3]} {code[3:]}", now=NOW, last_used_step=None)

    assert step == totp.step_at(NOW)


@pytest.mark.parametrize("drift_steps", [-1, 1])
def test_one_step_of_drift_is_tolerated(drift_steps: int) -> None:
    secret = totp.new_secret()
    phone_time = NOW + dt.timedelta(seconds=30 * drift_steps)

    step = totp.verify(
        secret, totp.code_at(secret, phone_time), now=NOW, last_used_step=None
    )

    assert step == totp.step_at(NOW) + drift_steps


@pytest.mark.parametrize("drift_steps", [-2, 2])
def test_two_steps_of_drift_are_refused(drift_steps: int) -> None:
    secret = totp.new_secret()
    phone_time = NOW + dt.timedelta(seconds=30 * drift_steps)
    code = totp.code_at(secret, phone_time)
    # A code from two steps away could equal a nearby one by chance (1 in 10^6).
    nearby = {
        totp.code_at(secret, NOW + dt.timedelta(seconds=30 * d)) for d in (-1, 0, 1)
    }
    assert code not in nearby

    assert totp.verify(secret, code, now=NOW, last_used_step=None) is None


def test_replayed_code_is_refused() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, NOW)
    used = totp.verify(secret, code, now=NOW, last_used_step=None)

    later = NOW + dt.timedelta(seconds=5)

    assert totp.verify(secret, code, now=later, last_used_step=used) is None
    with pytest.raises(TotpCodeReplayed) as caught:
        totp.require_valid_code(secret, code, now=later, last_used_step=used)
    assert caught.value.code == "totp_replayed"


def test_older_step_than_last_used_is_refused() -> None:
    secret = totp.new_secret()
    previous = NOW - dt.timedelta(seconds=30)
    current_step = totp.step_at(NOW)

    assert (
        totp.verify(
            secret,
            totp.code_at(secret, previous),
            now=NOW,
            last_used_step=current_step,
        )
        is None
    )


def test_next_code_after_a_used_one_is_accepted() -> None:
    secret = totp.new_secret()
    used = totp.step_at(NOW)
    next_moment = NOW + dt.timedelta(seconds=30)

    step = totp.verify(
        secret, totp.code_at(secret, next_moment), now=next_moment, last_used_step=used
    )

    assert step == used + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12-456"])
def test_malformed_codes_are_invalid(code: str) -> None:
    secret = totp.new_secret()

    with pytest.raises(TotpCodeInvalid) as caught:
        totp.require_valid_code(secret, code, now=NOW, last_used_step=None)

    assert caught.value.code == "totp_invalid"


def test_wrong_code_is_invalid_not_replayed() -> None:
    secret = totp.new_secret()
    valid = {
        totp.code_at(secret, NOW + dt.timedelta(seconds=30 * d)) for d in (-1, 0, 1)
    }
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in valid)

    with pytest.raises(TotpCodeInvalid) as caught:
        totp.require_valid_code(secret, wrong, now=NOW, last_used_step=None)

    assert type(caught.value) is TotpCodeInvalid


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        totp.step_at(dt.datetime(2026, 1, 5, 9, 0))
