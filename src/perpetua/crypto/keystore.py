"""The keystore: versioned class keys per practice, wrapped by the KEK.

Guards the middle of the key hierarchy and makes crypto-shredding real:

* it lives in the data directory, outside PostgreSQL, so a database backup
  carries wrapped data keys but never the class keys that unwrap them;
* each class key version is one small JSON file, wrapped by the KEK with
  associated data naming its practice, data class, period and version, written
  atomically with mode 0600 and never modified afterwards;
* destroying a key overwrites and unlinks its file and leaves a tombstone that
  holds the deletion certificate, so later reads fail with `KeyDestroyed`
  rather than the vaguer `KeyNotFound`, and no new key can silently replace a
  shredded one.

Layout under the keystore root::

    <practice>/<data class>/<period or "_">/v000001.key        wrapped class key
    <practice>/<data class>/<period or "_">/v000001.destroyed  tombstone

Per-object data keys are wrapped here too (`wrap_data_key`), under the newest
class key version, with associated data naming practice, data class, period and
object id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from perpetua.crypto import _files, aead
from perpetua.crypto.errors import (
    DecryptionFailed,
    KeyDestroyed,
    KeyNotFound,
)
from perpetua.crypto.kek import KekProvider

__all__ = [
    "BUCKETED_CLASSES",
    "HOLD_PERIOD",
    "ClassKey",
    "DataClass",
    "DeletionCertificate",
    "KeyInfo",
    "Keystore",
    "period_of",
]


class DataClass(StrEnum):
    """What a key protects; each class has its own keys per practice."""

    FIELDS = "fields"
    BLIND_INDEX = "blind_index"
    RECORDINGS = "recordings"
    TRANSCRIPTS = "transcripts"
    DOCUMENTS = "documents"
    BACKUPS = "backups"
    AUDIT_SIGNING = "audit_signing"
    # Audit months moved out of the database after seven years; not PHI keys
    # for termination's shredding, since the audit trail outlives the BAA.
    AUDIT_ARCHIVE = "audit_archive"


# One key per practice per class per month: destroying a month's key shreds
# every object of that month wherever its ciphertext lives, backups included.
BUCKETED_CLASSES = frozenset({DataClass.RECORDINGS, DataClass.TRANSCRIPTS})

# The bucket of objects under legal hold: their data keys are rewrapped here so
# that their month's key can be destroyed without them. Never swept by age.
HOLD_PERIOD = "hold"

_PRACTICE_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PERIOD_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])|hold")
_KEY_FILE_RE = re.compile(r"v([0-9]{6})\.(key|destroyed)")
_FILE_FORMAT = 1
_NO_PERIOD = "_"


def period_of(moment: date) -> str:
    """The retention bucket label (`YYYY-MM`) for a date or datetime."""
    return f"{moment.year:04d}-{moment.month:02d}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClassKey:
    """One unwrapped class key version, held only in memory."""

    practice_id: str
    data_class: DataClass
    period: str | None
    version: int
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyInfo:
    """What `Keystore.list` reports about a key version; no secret."""

    practice_id: str
    data_class: DataClass
    period: str | None
    version: int
    state: Literal["active", "destroyed"]
    created_at: str | None
    kek_id: str | None
    certificate_id: str | None


@dataclass(frozen=True)
class DeletionCertificate:
    """Evidence that key versions were destroyed: what, when, why, by whom."""

    certificate_id: str
    practice_id: str
    data_class: DataClass
    period: str | None
    key_versions: tuple[int, ...]
    destroyed_at: str
    reason: str
    actor: str
    kek_id: str
    method: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for storage as a retention record."""
        record = asdict(self)
        record["data_class"] = str(self.data_class)
        record["key_versions"] = list(self.key_versions)
        return record


class Keystore:
    """Class keys for every practice, stored as KEK-wrapped files."""

    def __init__(
        self,
        root: Path,
        kek: KekProvider,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._root = root
        self._kek = kek
        self._now = now
        self._cache: dict[Path, ClassKey] = {}
        self._hot: dict[
            tuple[str, DataClass, str | None, int], tuple[str, ClassKey]
        ] = {}

    @property
    def kek_id(self) -> str:
        """The id of the KEK wrapping this keystore's class keys."""
        return self._kek.kek_id

    # Class keys

    def current(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        period: str | None = None,
    ) -> ClassKey:
        """The newest class key version, created on first use."""
        practice, period = self._check(practice_id, data_class, period)
        directory = self._directory(practice, data_class, period)
        active, destroyed = self._scan(directory)
        if active:
            return self._load(practice, data_class, period, max(active))

        # Fail closed: a shredded bucket never gets a fresh key behind the
        # caller's back, or new data would land in a bucket believed empty.
        if destroyed:
            raise self._destroyed_error(directory, max(destroyed))
        return self._create(practice, data_class, period, version=1)

    def get(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        version: int,
        period: str | None = None,
    ) -> ClassKey:
        """A specific class key version, as named by a ciphertext."""
        practice, period = self._check(practice_id, data_class, period)
        return self._load(practice, data_class, period, version)

    def rotate(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        period: str | None = None,
    ) -> ClassKey:
        """Add a new version; new writes use it and old versions still decrypt."""
        practice, period = self._check(practice_id, data_class, period)
        directory = self._directory(practice, data_class, period)
        while True:
            active, destroyed = self._scan(directory)
            if destroyed and not active:
                raise self._destroyed_error(directory, max(destroyed))
            version = max(active | destroyed, default=0) + 1
            try:
                return self._create(practice, data_class, period, version)
            except FileExistsError:
                continue

    def destroy(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        period: str | None = None,
        *,
        reason: str,
        actor: str,
        versions: tuple[int, ...] | None = None,
    ) -> DeletionCertificate:
        """Crypto-shred key versions (all by default) and certify it.

        Destroying a subset is for retiring old versions after every data key
        was rewrapped; it may not remove the newest active version.
        """
        practice, period = self._check(practice_id, data_class, period)
        directory = self._directory(practice, data_class, period)
        active, _destroyed = self._scan(directory)
        if not active:
            raise KeyNotFound(
                f"no active {data_class} key for practice {practice}"
                + (f" period {period}" if period else "")
            )
        targets = tuple(sorted(active)) if versions is None else tuple(sorted(versions))
        if versions is not None:
            missing = set(targets) - active
            if missing:
                raise KeyNotFound(f"no active versions {sorted(missing)}")
            if max(active) in targets and set(targets) != active:
                raise ValueError(
                    "destroy the whole bucket or only older versions; the newest "
                    "version stays while others remain"
                )

        certificate = DeletionCertificate(
            certificate_id=str(uuid.uuid4()),
            practice_id=practice,
            data_class=data_class,
            period=period,
            key_versions=targets,
            destroyed_at=self._now().astimezone(UTC).isoformat(),
            reason=reason,
            actor=actor,
            kek_id=self._kek.kek_id,
            method="KEK-wrapped class key file overwritten, fsynced and unlinked",
        )
        record = json.dumps(certificate.as_dict(), sort_keys=True).encode()

        # Tombstone first, then shred: a crash in between leaves the key
        # unreadable (tombstones win) and a retry finishes the job.
        for version in targets:
            tombstone = directory / f"v{version:06d}.destroyed"
            with contextlib.suppress(FileExistsError):
                _files.publish_exclusive(tombstone, record)
        for version in targets:
            path = directory / f"v{version:06d}.key"
            self._cache.pop(path, None)
            _files.shred(path)
        return certificate

    def list(self, practice_id: str | uuid.UUID | None = None) -> list[KeyInfo]:
        """Every key version known, active or destroyed, without unwrapping."""
        infos: list[KeyInfo] = []
        for directory, practice, data_class, period in self._directories(practice_id):
            active, destroyed = self._scan(directory)
            for version in sorted(active | destroyed):
                if version in destroyed:
                    record = self._read_json(directory / f"v{version:06d}.destroyed")
                    infos.append(
                        KeyInfo(
                            practice, data_class, period, version, "destroyed",
                            None, record.get("kek_id"), record.get("certificate_id"),
                        )
                    )  # fmt: skip
                else:
                    record = self._read_json(directory / f"v{version:06d}.key")
                    infos.append(
                        KeyInfo(
                            practice, data_class, period, version, "active",
                            record.get("created_at"), record.get("kek_id"), None,
                        )
                    )  # fmt: skip
        return infos

    def certificate(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        period: str | None = None,
    ) -> DeletionCertificate | None:
        """The deletion certificate of a destroyed bucket, from its tombstone."""
        practice, period = self._check(practice_id, data_class, period)
        directory = self._directory(practice, data_class, period)
        active, destroyed = self._scan(directory)
        if not destroyed or active:
            return None
        record = self._read_json(directory / f"v{max(destroyed):06d}.destroyed")
        return DeletionCertificate(
            certificate_id=str(record["certificate_id"]),
            practice_id=str(record["practice_id"]),
            data_class=DataClass(record["data_class"]),
            period=record.get("period"),
            key_versions=tuple(int(v) for v in record["key_versions"]),
            destroyed_at=str(record["destroyed_at"]),
            reason=str(record["reason"]),
            actor=str(record["actor"]),
            kek_id=str(record["kek_id"]),
            method=str(record["method"]),
        )

    # Data keys

    def wrap_data_key(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        data_key: bytes,
        period: str | None = None,
    ) -> bytes:
        """Wrap a per-object data key under the newest class key version."""
        key = self.current(practice_id, data_class, period)
        ad = self._data_key_ad(key, object_id)
        return aead.seal(key.secret, key.version, data_key, ad)

    def unwrap_data_key(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        wrapped: bytes,
        period: str | None = None,
    ) -> bytes:
        """Recover a data key; fails if any of its context differs."""
        version = aead.key_version_of(wrapped)
        key = self.get(practice_id, data_class, version, period)
        return aead.open_sealed(key.secret, wrapped, self._data_key_ad(key, object_id))

    def rewrap_data_key(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        wrapped: bytes,
        period: str | None = None,
    ) -> bytes:
        """Re-wrap a data key under the newest class key; the blob is untouched."""
        newest = self.current(practice_id, data_class, period)
        if aead.key_version_of(wrapped) == newest.version:
            return wrapped
        data_key = self.unwrap_data_key(
            practice_id, data_class, object_id, wrapped, period
        )
        ad = self._data_key_ad(newest, object_id)
        return aead.seal(newest.secret, newest.version, data_key, ad)

    def move_data_key(
        self,
        practice_id: str | uuid.UUID,
        data_class: DataClass,
        object_id: str | uuid.UUID,
        wrapped: bytes,
        *,
        from_period: str | None,
        to_period: str | None,
    ) -> tuple[bytes, int]:
        """Re-wrap a data key into another bucket (say, legal hold); the blob is
        untouched. Returns the new wrapped key and the class key version used."""
        data_key = self.unwrap_data_key(
            practice_id, data_class, object_id, wrapped, from_period
        )
        target = self.current(practice_id, data_class, to_period)
        ad = self._data_key_ad(target, object_id)
        return aead.seal(target.secret, target.version, data_key, ad), target.version

    @staticmethod
    def new_data_key() -> bytes:
        """A fresh random 256-bit data key for one object."""
        return secrets.token_bytes(aead.KEY_SIZE)

    # Internals

    @staticmethod
    def _data_key_ad(key: ClassKey, object_id: str | uuid.UUID) -> bytes:
        return aead.associated_data(
            "perpetua/data-key/v1",
            key.practice_id,
            str(key.data_class),
            key.period,
            str(object_id),
        )

    @staticmethod
    def _class_key_ad(
        practice: str, data_class: DataClass, period: str | None, version: int
    ) -> bytes:
        return aead.associated_data(
            "perpetua/class-key/v1", practice, str(data_class), period, version
        )

    @staticmethod
    def _check(
        practice_id: str | uuid.UUID, data_class: DataClass, period: str | None
    ) -> tuple[str, str | None]:
        # These strings become path components: validate before any I/O.
        practice = str(practice_id)
        if not _PRACTICE_RE.fullmatch(practice):
            raise ValueError("practice id must be 1-128 of [A-Za-z0-9_-]")
        data_class = DataClass(data_class)
        if data_class in BUCKETED_CLASSES:
            if period is None or not _PERIOD_RE.fullmatch(period):
                raise ValueError(f"{data_class} keys need a period like 2026-12")
        elif period is not None:
            raise ValueError(f"{data_class} keys are not bucketed by period")
        return practice, period

    def _directory(
        self, practice: str, data_class: DataClass, period: str | None
    ) -> Path:
        return self._root / practice / str(data_class) / (period or _NO_PERIOD)

    def _directories(
        self, practice_id: str | uuid.UUID | None
    ) -> Iterator[tuple[Path, str, DataClass, str | None]]:
        if not self._root.is_dir():
            return
        if practice_id is None:
            practices = sorted(p.name for p in self._root.iterdir() if p.is_dir())
        else:
            practices = [self._check(practice_id, DataClass.FIELDS, None)[0]]
        for practice in practices:
            for data_class in DataClass:
                class_dir = self._root / practice / str(data_class)
                if not class_dir.is_dir():
                    continue
                for bucket in sorted(class_dir.iterdir()):
                    period = None if bucket.name == _NO_PERIOD else bucket.name
                    yield bucket, practice, data_class, period

    @staticmethod
    def _scan(directory: Path) -> tuple[set[int], set[int]]:
        keys: set[int] = set()
        tombstones: set[int] = set()
        if not directory.is_dir():
            return keys, tombstones
        for entry in directory.iterdir():
            match = _KEY_FILE_RE.fullmatch(entry.name)
            if match:
                kind = keys if match.group(2) == "key" else tombstones
                kind.add(int(match.group(1)))
        # A tombstone wins over a key file left by an interrupted destroy.
        return keys - tombstones, tombstones

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        loaded = json.loads(_files.read_private(path))
        if not isinstance(loaded, dict):
            raise DecryptionFailed(f"{path.name} is not a keystore record", "format")
        return loaded

    def _destroyed_error(self, directory: Path, version: int) -> KeyDestroyed:
        try:
            record = self._read_json(directory / f"v{version:06d}.destroyed")
            certificate_id = record.get("certificate_id")
        except (OSError, ValueError):
            certificate_id = None
        return KeyDestroyed(
            f"key version {version} in {directory.relative_to(self._root)} was "
            f"destroyed (certificate {certificate_id})",
            certificate_id=certificate_id,
        )

    def _create(
        self, practice: str, data_class: DataClass, period: str | None, version: int
    ) -> ClassKey:
        directory = self._directory(practice, data_class, period)
        _files.ensure_private_dir(directory)
        secret = secrets.token_bytes(aead.KEY_SIZE)
        wrapped = self._kek.wrap(
            secret, self._class_key_ad(practice, data_class, period, version)
        )
        record = {
            "format": _FILE_FORMAT,
            "practice_id": practice,
            "data_class": str(data_class),
            "period": period,
            "version": version,
            "kek_id": self._kek.kek_id,
            "created_at": self._now().astimezone(UTC).isoformat(),
            "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
        }
        path = directory / f"v{version:06d}.key"
        try:
            _files.publish_exclusive(path, json.dumps(record, sort_keys=True).encode())
        except FileExistsError:
            if version != 1:
                raise
            # A concurrent first use won the race; its key is the key.
            return self._load(practice, data_class, period, version)
        key = ClassKey(practice, data_class, period, version, secret)
        self._cache[path] = key
        return key

    def _load(
        self, practice: str, data_class: DataClass, period: str | None, version: int
    ) -> ClassKey:
        # The hot path (every field decryption) costs one stat of the tombstone:
        # checked on every use, not only on a cache miss, so a key destroyed by
        # another process stops working here too.
        names = (practice, data_class, period, version)
        hit = self._hot.get(names)
        if hit is not None:
            tombstone_name, key = hit
            if not os.path.exists(tombstone_name):
                return key
            del self._hot[names]

        directory = self._directory(practice, data_class, period)
        path = directory / f"v{version:06d}.key"
        tombstone = directory / f"v{version:06d}.destroyed"
        if tombstone.exists():
            self._cache.pop(path, None)
            raise self._destroyed_error(directory, version)
        cached = self._cache.get(path)
        if cached is not None:
            self._hot[names] = (str(tombstone), cached)
            return cached

        try:
            record = self._read_json(path)
        except FileNotFoundError:
            if tombstone.exists():
                raise self._destroyed_error(directory, version) from None
            raise KeyNotFound(
                f"no {data_class} key version {version} for practice {practice}"
                + (f" period {period}" if period else "")
            ) from None
        wrapped = base64.b64decode(record["wrapped_key"])
        ad = self._class_key_ad(practice, data_class, period, version)
        try:
            secret = self._kek.unwrap(wrapped, ad)
        except DecryptionFailed:
            stored = record.get("kek_id")
            if stored != self._kek.kek_id:
                raise DecryptionFailed(
                    f"class key was wrapped by KEK {stored}, but this process "
                    f"uses {self._kek.kek_id}",
                    reason="wrong_kek",
                ) from None
            raise
        key = ClassKey(practice, data_class, period, version, secret)
        self._cache[path] = key
        self._hot[names] = (str(tombstone), key)
        return key
