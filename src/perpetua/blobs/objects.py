"""Where ciphertext bytes live: a local folder or S3-compatible object storage.

Guards the storage step only, and never sees plaintext: the sealing layer hands
it an encrypted stream. Both backends stream in constant memory (the local one
writes through a file descriptor; the S3 one uploads fixed-size multipart
parts), publish an object only once it is complete, and refuse to overwrite an
object that exists, so a crash leaves a missing object, never a half one.

Keys are relative paths such as `recordings/<practice>/<period>/<object id>`;
they are validated before any I/O, because they become file names.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from perpetua.config import Settings
from perpetua.crypto._files import ensure_private_dir, fsync_dir
from perpetua.crypto.streaming import BinaryReader, BinaryWriter
from perpetua.errors import ConfigError

__all__ = [
    "LocalObjects",
    "ObjectStore",
    "S3Objects",
    "open_objects",
]

_KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
_MAX_KEY = 512

# S3 parts must be at least 5 MiB (except the last); 8 MiB bounds memory per
# upload while keeping the part count low enough for multi-gigabyte dumps.
S3_PART_SIZE = 8 << 20


def check_key(key: str) -> str:
    """A key made of safe path segments, without `..` or a leading slash."""
    if len(key) > _MAX_KEY or not _KEY_RE.fullmatch(key) or ".." in key:
        raise ValueError("object key must be relative path segments of [A-Za-z0-9_.-]")
    return key


class ObjectStore(Protocol):
    """Write-once storage of opaque byte streams."""

    description: str

    def write(self, key: str) -> contextlib.AbstractContextManager[BinaryWriter]:
        """A writer whose bytes become object `key` when the block exits cleanly."""
        ...

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryReader]:
        """A reader of object `key`; FileNotFoundError if there is none."""
        ...

    def size(self, key: str) -> int:
        """The stored size of `key`; FileNotFoundError if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` if it exists."""
        ...

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix/` (everything for ""), sorted."""
        ...


class LocalObjects:
    """Objects as 0600 files under a 0700 folder of the data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextlib.contextmanager
    def write(self, key: str) -> Iterator[BinaryWriter]:
        path = self._path(key)
        ensure_private_dir(path.parent)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=1 << 16) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())

            # Link, not rename: an existing object is never replaced.
            os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryReader]:
        fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb", buffering=1 << 16) as handle:
            yield cast(BinaryReader, handle)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()


class _S3Body:
    """A botocore streaming body seen through `readinto`."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readinto(self, buffer: memoryview, /) -> int:
        chunk: bytes = self._body.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _S3Upload:
    """Buffers one part at a time and uploads it; small objects go in one PUT."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: memoryview, /) -> int:
        self._buffer += data
        while len(self._buffer) >= S3_PART_SIZE:
            self._send_part(bytes(self._buffer[:S3_PART_SIZE]))
            del self._buffer[:S3_PART_SIZE]
        return len(data)

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        sent = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def finish(self) -> None:
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
            )
            return
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )


class S3Objects:
    """Objects in an S3-compatible bucket, under an optional key prefix.

    Limitation: an S3 PUT replaces an existing object; write-once holds because
    every object key carries a fresh object id, not because S3 refuses.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self._prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _is_missing(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in {"NoSuchKey", "404", "NotFound"}

    @contextlib.contextmanager
    def write(self, key: str) -> Iterator[BinaryWriter]:
        upload = _S3Upload(self._client, self._bucket, self._key(key))
        try:
            yield upload
            upload.finish()
        except BaseException:
            upload.abort()
            raise

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryReader]:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                raise FileNotFoundError(key) from None
            raise
        body = response["Body"]
        try:
            yield _S3Body(body)
        finally:
            body.close()

    def size(self, key: str) -> int:
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                raise FileNotFoundError(key) from None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=self._key(key))

    def keys(self, prefix: str) -> Iterator[str]:
        if prefix:
            full = self._key(prefix) + "/"
        else:
            full = f"{self._prefix}/" if self._prefix else ""
        strip = len(self._prefix) + 1 if self._prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self._bucket, Prefix=full):
            found += [item["Key"][strip:] for item in page.get("Contents", [])]
        yield from sorted(found)


def _require_tls(endpoint: str) -> None:
    # Ciphertext only crosses the network, but the credentials that sign
    # requests and the object names do too: TLS unless the endpoint is local.
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return
    local = host == "localhost"
    with contextlib.suppress(ValueError):
        local = local or ipaddress.ip_address(host).is_loopback
    if parts.scheme != "http" or not local:
        raise ConfigError(
            "PERPETUA_S3_ENDPOINT_URL must be https:// (http:// only on this machine)"
        )


def open_objects(settings: Settings, area: str = "blobs") -> ObjectStore:
    """The object store the settings name: S3 when `blob_store_url` is set,
    else `<data-dir>/<area>`."""
    url = settings.blob_store_url
    if not url:
        return LocalObjects(settings.data_dir / area)
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError("PERPETUA_BLOB_STORE must look like s3://bucket/prefix")
    if settings.s3_endpoint_url:
        _require_tls(settings.s3_endpoint_url)

    try:
        boto3 = importlib.import_module("boto3")
    except ImportError as exc:
        raise ConfigError(
            "an S3 blob store needs boto3: pip install 'perpetua[aws]'"
        ) from exc
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
    )
    prefix = "/".join(p for p in (parts.path.strip("/"), area) if p)
    return S3Objects(client, parts.netloc, prefix)
