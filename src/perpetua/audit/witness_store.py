"""Copies of signed audit checkpoints in object storage that nobody can delete.

This module guards the witness copy that lives outside Perpetua's database: each
witnessed checkpoint (a C2SP signed note, no PHI) is written to an S3-compatible
bucket with an Object Lock in COMPLIANCE mode and a retain-until date. Until that
date no account, the bucket owner's root included, can delete or overwrite that
object version, so a log rewritten and re-signed later cannot make the copy
agree with it.

A bucket without Object Lock would hold copies anyone with the credentials could
replace, which is no witness at all: it is refused with ``WitnessStoreRefused``,
and so is a write the store accepted without applying the lock (some
S3-compatible servers ignore the lock headers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from perpetua.config import Settings
from perpetua.errors import ConfigError

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_RETENTION_DAYS",
    "WitnessStore",
    "WitnessStoreRefused",
    "open_witness_store",
]

# Seven years, leap days included: as long as the audit log itself is kept.
DEFAULT_RETENTION_DAYS = 7 * 365 + 2
DEFAULT_PREFIX = "audit-witness"
_MAX_RETENTION_DAYS = 100 * 366


class WitnessStoreRefused(ConfigError):
    """The witness bucket cannot hold a copy nobody can delete."""

    code = "witness_store_refused"
    title = "The witness object store is not usable"


@dataclass(frozen=True)
class WitnessStore:
    """One bucket and prefix receiving locked checkpoint copies."""

    client: Any
    bucket: str
    prefix: str
    retention_days: int

    def key_for(self, practice_id: uuid.UUID, size: int) -> str:
        # Zero-padded size: listing a practice's folder gives the checkpoints in
        # log order.
        name = f"{practice_id}/checkpoint-{size:020d}.txt"
        return f"{self.prefix}/{name}" if self.prefix else name

    def destination(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def check_object_lock(self) -> None:
        """Refuse a bucket whose objects could be deleted or replaced."""
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except Exception as exc:
            code = _error_code(exc)
            if code == "ObjectLockConfigurationNotFoundError":
                raise WitnessStoreRefused(
                    f"bucket {self.bucket} has no Object Lock: create it with "
                    "Object Lock enabled (it cannot be switched on for every "
                    "object later), or unset PERPETUA_WITNESS_STORE"
                ) from exc
            raise WitnessStoreRefused(
                f"cannot read the Object Lock settings of bucket {self.bucket} "
                f"({code or type(exc).__name__})"
            ) from exc
        enabled = found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise WitnessStoreRefused(
                f"bucket {self.bucket} has no Object Lock enabled"
            )

    def put(
        self, practice_id: uuid.UUID, size: int, note: str, now: dt.datetime
    ) -> str:
        """Write one checkpoint under a compliance lock; returns its s3:// name."""
        key = self.key_for(practice_id, size)
        until = now + dt.timedelta(days=self.retention_days)
        written = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=note.encode("utf-8"),
            ContentType="text/plain; charset=utf-8",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
            # Object Lock writes must carry an integrity checksum.
            ChecksumAlgorithm="SHA256",
        )

        # Read the lock back from the version just written: a store that took
        # the object but dropped the lock headers must not count as a witness.
        head_args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if written.get("VersionId"):
            head_args["VersionId"] = written["VersionId"]
        head = self.client.head_object(**head_args)
        held_until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") != "COMPLIANCE" or held_until is None:
            raise WitnessStoreRefused(
                f"bucket {self.bucket} stored the checkpoint without a compliance lock"
            )
        if held_until < until - dt.timedelta(seconds=1):
            raise WitnessStoreRefused(
                f"bucket {self.bucket} shortened the checkpoint's retention"
            )
        return self.destination(key)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _require_tls(endpoint: str) -> None:
    # The checkpoint is public by design, but the credentials that sign the
    # requests are not: TLS unless the endpoint is on this machine.
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return
    local = host == "localhost"
    with contextlib.suppress(ValueError):
        local = local or ipaddress.ip_address(host).is_loopback
    if parts.scheme != "http" or not local:
        raise ConfigError(
            "PERPETUA_WITNESS_S3_ENDPOINT_URL must be https:// "
            "(http:// only on this machine)"
        )


def _retention_days(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise ConfigError(
            "PERPETUA_WITNESS_RETENTION_DAYS must be a whole number of days"
        ) from None
    if not 1 <= days <= _MAX_RETENTION_DAYS:
        raise ConfigError(
            f"PERPETUA_WITNESS_RETENTION_DAYS must be between 1 and "
            f"{_MAX_RETENTION_DAYS}"
        )
    return days


def open_witness_store(
    settings: Settings, *, client: Any | None = None
) -> WitnessStore | None:
    """The witness bucket the settings name, or None when witnessing to object
    storage is not configured. ``client`` replaces the boto3 client built from
    the settings (an already configured one, for example)."""
    url = settings.witness_store_url
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError("PERPETUA_WITNESS_STORE must look like s3://bucket/prefix")
    days = _retention_days(settings.witness_retention_days)
    prefix = parts.path.strip("/") if parts.path.strip("/") else DEFAULT_PREFIX
    if client is None:
        endpoint = settings.witness_s3_endpoint_url or settings.s3_endpoint_url
        if endpoint:
            _require_tls(endpoint)
        try:
            boto3 = importlib.import_module("boto3")
        except ImportError as exc:
            raise ConfigError(
                "witnessing to object storage needs boto3: pip install 'perpetua[aws]'"
            ) from exc
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.witness_s3_region or settings.s3_region,
        )
    return WitnessStore(client, parts.netloc, prefix, days)
