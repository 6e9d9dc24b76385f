"""Requests to Twilio's REST API about one practice's recordings: download the
media, then delete the recording at Twilio.

Where a request goes is never taken from a callback. A recording status callback
carries a `RecordingUrl`, but a signed callback only proves who sent it, not that
the URL is Twilio's: following it would let whoever holds a practice's auth token
(or a bug upstream) point this service at any host, internal ones included. The
media URL is built instead from the configured API base (Twilio's by default),
the practice's stored account SID and a recording SID checked to be `RE` and 32
hex digits.

The requests go through the `twilio` package's own HTTP client (`Client.request`
over `TwilioHttpClient`), authenticated with the account SID and the practice's
auth token. The body is streamed and read at most up to the largest recording
ingestion accepts, so a huge or endless answer cannot fill memory; redirects are
followed at most three times, to https only, and the `requests` library drops the
credentials when a redirect leaves the API's host.

Every outcome is a named exception (or the bytes): 404 means Twilio has no such
recording, 401 that it refused the credentials, 5xx, 429 and network failures
that it may answer later.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from perpetua.calls.media import MAX_RECORDING_BYTES
from perpetua.config import Settings
from perpetua.errors import ConfigError, PerpetuaError

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 3
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_CHUNK = 64 * 1024
# Twilio records telephone audio as 8 kHz 16-bit PCM: 16 000 bytes a second
# for each channel, plus a small header.
_WAV_BYTES_PER_SECOND = 16_000
_WAV_HEADER_ALLOWANCE = 4096

# The twilio package logs each request and response at INFO; those lines name
# account and recording ids, which belong in the audit log, not in logs.
_quiet = logging.getLogger("perpetua.calls.twilio_http")
_quiet.setLevel(logging.WARNING)


class TwilioRequestFailed(PerpetuaError):
    """A request to Twilio did not return the recording (base of the refusals)."""

    code = "twilio_request_failed"
    status = 502
    title = "Twilio did not answer as expected"
    # Worth trying again later (Twilio or the network was unavailable).
    retry = False


class RecordingGone(TwilioRequestFailed):
    code = "twilio_recording_not_found"
    title = "Twilio has no such recording"


class CredentialsRejected(TwilioRequestFailed):
    code = "twilio_credentials_rejected"
    title = "Twilio credentials rejected"


class TwilioUnavailable(TwilioRequestFailed):
    code = "twilio_unavailable"
    title = "Twilio could not be reached or answered with a server error"
    retry = True


class RecordingTooLarge(TwilioRequestFailed):
    code = "twilio_recording_too_large"
    title = "The recording is larger than Perpetua takes in"


def api_base(settings: Settings) -> str:
    """The configured API base, checked: https, or http only to this machine."""
    raw = settings.twilio_api_base or DEFAULT_API_BASE
    parts = urlsplit(raw)
    local = parts.hostname in _LOCAL_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigError(
            "PERPETUA_TWILIO_API_BASE must be an https URL (http only for localhost)"
        )
    if (
        not parts.hostname
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            "PERPETUA_TWILIO_API_BASE must be a bare origin such as "
            "https://api.twilio.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


def media_format(duration_seconds: int, channels: int) -> str:
    """WAV when it fits in what ingestion takes, MP3 otherwise.

    WAV can be silenced sample by sample without re-encoding; a call too long for
    WAV within the size limit is asked for as MP3, about a tenth the size."""
    expected = duration_seconds * channels * _WAV_BYTES_PER_SECOND
    if expected + _WAV_HEADER_ALLOWANCE <= MAX_RECORDING_BYTES:
        return "wav"
    return "mp3"


@dataclass
class _Body:
    """What the response hook read, kept outside the twilio response object
    (which decodes bodies as text)."""

    data: bytes = b""
    too_large: bool = False
    https_only: bool = True
    downgraded: bool = False
    seen: list[int] = field(default_factory=list)


def _reader(body: _Body) -> Any:
    def hook(response: requests.Response, **_kwargs: Any) -> requests.Response:
        body.seen.append(response.status_code)
        if urlsplit(response.url).scheme != "https" and body.https_only:
            body.downgraded = True
        if response.is_redirect or response.status_code != 200:
            return response

        # Read no more than one byte past the limit: enough to know it is too
        # large, whatever Content-Length claimed.
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_RECORDING_BYTES:
            body.too_large = True
        else:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RECORDING_BYTES:
                    body.too_large = True
                    break
            if not body.too_large:
                body.data = b"".join(chunks)
        response.close()
        # The twilio client reads the response as text afterwards; it gets an
        # empty one, the audio stays in `body`.
        response._content = b""
        response.encoding = "utf-8"
        return response

    return hook


@dataclass(frozen=True)
class Account:
    """One practice's Twilio account as stored in its call settings."""

    account_sid: str
    auth_token: str = field(repr=False)


class TwilioRecordings:
    """Download and delete recordings of one Twilio account (blocking calls:
    run them off the event loop)."""

    def __init__(
        self, base: str, account: Account, *, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        if not ACCOUNT_SID.fullmatch(account.account_sid):
            raise CredentialsRejected("the stored Twilio account SID is malformed")
        self.base = base
        self.account = account
        self.timeout = timeout

    def _url(self, recording_sid: str, suffix: str) -> str:
        if not RECORDING_SID.fullmatch(recording_sid):
            raise RecordingGone("the recording SID is malformed")
        return (
            f"{self.base}/{API_VERSION}/Accounts/{self.account.account_sid}"
            f"/Recordings/{recording_sid}.{suffix}"
        )

    def _send(self, method: str, url: str, body: _Body) -> int:
        http = TwilioHttpClient(
            timeout=self.timeout,
            logger=_quiet,
            request_hooks={"response": [_reader(body)]},
        )
        # Streamed, so the hook decides how much of the body is read.
        http.session.stream = True
        http.session.max_redirects = MAX_REDIRECTS
        client = Client(
            self.account.account_sid, self.account.auth_token, http_client=http
        )
        # Edge and region from the environment would rewrite the host.
        client.edge = None
        client.region = None
        try:
            answered = client.request(method, url, allow_redirects=True)
        except (requests.Timeout, requests.ConnectionError):
            raise TwilioUnavailable() from None
        except requests.TooManyRedirects:
            raise TwilioRequestFailed("Twilio redirected too many times") from None
        except requests.RequestException:
            raise TwilioUnavailable() from None
        finally:
            http.session.close()
        if body.downgraded:
            raise TwilioRequestFailed("Twilio redirected to a URL that is not https")
        return int(answered.status_code)

    def _raise_for(self, status: int) -> NoReturn:
        if status == 401:
            raise CredentialsRejected()
        if status == 404:
            raise RecordingGone()
        if status == 429 or status >= 500:
            raise TwilioUnavailable()
        raise TwilioRequestFailed(f"Twilio answered HTTP {status}")

    def download(
        self, recording_sid: str, duration_seconds: int, channels: int
    ) -> bytes:
        """The recording's audio, at most MAX_RECORDING_BYTES."""
        url = self._url(recording_sid, media_format(duration_seconds, channels))
        body = _Body(https_only=urlsplit(self.base).scheme == "https")
        status = self._send("GET", url, body)
        if status != 200:
            self._raise_for(status)
        if body.too_large:
            raise RecordingTooLarge()
        return body.data

    def delete(self, recording_sid: str) -> bool:
        """Delete the recording at Twilio: True when deleted now, False when
        Twilio no longer had it (which leaves the same end state)."""
        url = self._url(recording_sid, "json")
        body = _Body(https_only=urlsplit(self.base).scheme == "https")
        status = self._send("DELETE", url, body)
        if status in (200, 204):
            return True
        if status == 404:
            return False
        self._raise_for(status)
