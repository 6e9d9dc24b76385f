"""Create, verify and restore encrypted backups, streaming through pipes.

Guards the dump on its way out and back in:

* `create`: `pg_dump --format=custom` writes to a pipe; the pipe is encrypted
  segment by segment into the object store; the manifest is written last, so
  a backup without a manifest is an interrupted one and is never listed.
* `verify`: the stored bytes are hashed and every segment authenticated and
  hashed again, without a database and without writing plaintext anywhere.
* `restore`: only into an empty database; decrypted segments go to
  `pg_restore --single-transaction` through its stdin, and if anything fails
  to authenticate `pg_restore` is killed before it can commit.

Passwords reach the PostgreSQL tools through their environment, never their
command line, where any local user could read them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from typing import IO, cast

import psycopg
from psycopg.conninfo import make_conninfo

from perpetua.backup.manifest import Manifest
from perpetua.blobs.objects import ObjectStore
from perpetua.crypto.aead import key_version_of
from perpetua.crypto.digests import DigestingReader, DigestingWriter, Progress
from perpetua.crypto.errors import CryptoError, DecryptionFailed
from perpetua.crypto.keystore import DataClass, Keystore
from perpetua.crypto.streaming import (
    DEFAULT_SEGMENT_SIZE,
    BinaryReader,
    encrypt_stream,
    iter_decrypt,
)
from perpetua.db.embedded import pg_binary
from perpetua.errors import ConfigError, NotFound, PerpetuaError

__all__ = [
    "PLATFORM",
    "BackupFailed",
    "create_backup",
    "list_backups",
    "restore_backup",
    "verify_backup",
]

# Backups are not a practice's data: they are sealed under a platform key.
PLATFORM = "platform"
_DUMP = "dump.ppsb"
_MANIFEST = "manifest.json"
_STDERR_LIMIT = 16 << 10


class BackupFailed(PerpetuaError):
    """A backup could not be made, checked or restored; `reason` says why."""

    code = "backup_failed"
    status = 500
    title = "The backup operation failed"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# PostgreSQL tools


def tool(name: str, *, embedded: bool, server_major: int | None = None) -> str:
    """The embedded cluster's binary; for an external server, the first of the
    one on PATH and the bundled one whose major version is at least the
    server's (an older pg_dump refuses a newer server)."""
    bundled = pg_binary(name)
    if embedded:
        return bundled
    candidates = [c for c in (shutil.which(name), bundled) if c and os.path.exists(c)]
    for candidate in candidates:
        if server_major is None or _major(_tool_version(candidate)) >= server_major:
            return candidate
    raise ConfigError(
        f"no {name} of PostgreSQL {server_major} or newer found; install the "
        "PostgreSQL client of the server's version"
    )


def _major(version_line: str) -> int:
    # "pg_dump (PostgreSQL) 16.4" or "... 15.18 (Debian 15.18-0+deb12u1)"
    for word in version_line.split():
        head = word.split(".")[0]
        if head.isdigit():
            return int(head)
    return 0


def _env(conninfo: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
    }
    for key, variable in names.items():
        if conninfo.get(key):
            env[variable] = conninfo[key]
    return env


def _drain(stream: IO[bytes], into: bytearray) -> threading.Thread:
    # Read stderr alongside stdout so a chatty tool can never fill its pipe and
    # stall; keep only the tail for the error message.
    def run() -> None:
        for line in iter(stream.readline, b""):
            into.extend(line)
            del into[:-_STDERR_LIMIT]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _tail(buffer: bytearray) -> str:
    return bytes(buffer).decode("utf-8", "replace").strip()[-800:]


def _server_version(conninfo: Mapping[str, str]) -> str:
    with psycopg.connect(make_conninfo(**conninfo), connect_timeout=15) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "unknown"


def _tool_version(path: str) -> str:
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [path, "--version"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


# Create


def new_backup_id(now: dt.datetime) -> str:
    return (
        now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)
    )


def create_backup(
    objects: ObjectStore,
    keystore: Keystore,
    conninfo: Mapping[str, str],
    *,
    embedded: bool,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> Manifest:
    """Dump the database `conninfo` names, encrypted, into `objects`."""
    created = now or dt.datetime.now(dt.UTC)
    backup_id = new_backup_id(created)
    dump_key = f"{backup_id}/{_DUMP}"
    server_version = _server_version(conninfo)
    pg_dump = tool("pg_dump", embedded=embedded, server_major=_major(server_version))

    data_key = keystore.new_data_key()
    wrapped = keystore.wrap_data_key(PLATFORM, DataClass.BACKUPS, backup_id, data_key)
    errors = bytearray()
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
        [pg_dump, "--format=custom", "--no-password"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(conninfo),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    drain = _drain(process.stderr, errors)
    try:
        plain = DigestingReader(cast(BinaryReader, process.stdout), progress)
        with objects.write(dump_key) as sink:
            stored = DigestingWriter(sink)
            encrypt_stream(
                data_key,
                plain,
                stored,
                practice_id=PLATFORM,
                data_class=DataClass.BACKUPS,
                object_id=backup_id,
                segment_size=segment_size,
            )
            # Fail before the object is published: a dump that exited non-zero
            # is incomplete even though its stream looked whole.
            code = process.wait()
            drain.join(timeout=10)
            if code != 0:
                raise BackupFailed("pg_dump", f"pg_dump failed: {_tail(errors)}")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        objects.delete(dump_key)
        raise

    manifest = Manifest(
        backup_id=backup_id,
        created_at=created.astimezone(dt.UTC).isoformat(),
        practice_id=PLATFORM,
        data_class=str(DataClass.BACKUPS),
        key_version=key_version_of(wrapped),
        wrapped_data_key=base64.b64encode(wrapped).decode("ascii"),
        dump_format="pg_dump custom",
        plaintext_size=plain.count,
        plaintext_sha256=plain.hash.hexdigest(),
        stored_size=stored.count,
        stored_sha256=stored.hash.hexdigest(),
        pg_dump_version=_tool_version(pg_dump),
        server_version=server_version,
        database=conninfo.get("dbname", ""),
    )
    with objects.write(f"{backup_id}/{_MANIFEST}") as sink:
        sink.write(memoryview(manifest.to_json()))
    return manifest


# Listing and reading


def list_backups(objects: ObjectStore) -> list[Manifest]:
    """Every complete backup (those with a manifest), oldest first."""
    ids = sorted(
        {key.split("/", 1)[0] for key in objects.keys("") if key.endswith(_MANIFEST)}
    )
    return [read_manifest(objects, backup_id) for backup_id in ids]


def read_manifest(objects: ObjectStore, backup_id: str) -> Manifest:
    try:
        with objects.open(f"{backup_id}/{_MANIFEST}") as source:
            chunks = bytearray()
            buffer = bytearray(65536)
            while got := source.readinto(memoryview(buffer)):
                chunks += buffer[:got]
    except (FileNotFoundError, ValueError):
        raise NotFound(f"no backup {backup_id!r}") from None
    manifest = Manifest.from_json(bytes(chunks))
    if manifest.backup_id != backup_id:
        raise BackupFailed("manifest", "the manifest names another backup")
    return manifest


def _plaintext(
    objects: ObjectStore,
    keystore: Keystore,
    manifest: Manifest,
    progress: Progress | None,
) -> Iterator[bytes]:
    """Authenticated plaintext chunks, then checks of both digests and sizes."""
    plain = hashlib.sha256()
    size = 0
    try:
        data_key = keystore.unwrap_data_key(
            PLATFORM, DataClass.BACKUPS, manifest.backup_id, manifest.wrapped_key_bytes
        )
        with objects.open(f"{manifest.backup_id}/{_DUMP}") as source:
            stored = DigestingReader(source, progress)
            for chunk in iter_decrypt(
                data_key,
                stored,
                practice_id=PLATFORM,
                data_class=DataClass.BACKUPS,
                object_id=manifest.backup_id,
            ):
                plain.update(chunk)
                size += len(chunk)
                yield chunk
    except FileNotFoundError:
        raise BackupFailed("missing", "the backup's dump is missing") from None
    except DecryptionFailed as exc:
        raise BackupFailed(
            exc.reason, f"the backup does not authenticate: {exc}"
        ) from exc
    except CryptoError as exc:
        raise BackupFailed("key", f"the backup cannot be decrypted: {exc}") from exc
    checks = (
        (stored.count == manifest.stored_size, "stored size"),
        (hmac.compare_digest(stored.hash.hexdigest(), manifest.stored_sha256),
         "stored SHA-256"),
        (size == manifest.plaintext_size, "plaintext size"),
        (hmac.compare_digest(plain.hexdigest(), manifest.plaintext_sha256),
         "plaintext SHA-256"),
    )  # fmt: skip
    for ok, what in checks:
        if not ok:
            raise BackupFailed(
                "manifest", f"the backup's {what} differs from its manifest"
            )


def verify_backup(
    objects: ObjectStore,
    keystore: Keystore,
    backup_id: str,
    *,
    progress: Progress | None = None,
) -> Manifest:
    """Authenticate every segment and check every digest; restore nothing."""
    manifest = read_manifest(objects, backup_id)
    for _chunk in _plaintext(objects, keystore, manifest, progress):
        pass
    return manifest


# Restore

_EMPTY_CHECK = """
select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname !~ '^pg_toast'
"""


def restore_backup(
    objects: ObjectStore,
    keystore: Keystore,
    backup_id: str,
    conninfo: Mapping[str, str],
    *,
    embedded: bool,
    progress: Progress | None = None,
) -> Manifest:
    """Restore a backup into the empty database `conninfo` names, atomically."""
    manifest = read_manifest(objects, backup_id)
    with psycopg.connect(make_conninfo(**conninfo), connect_timeout=15) as conn:
        row = conn.execute(_EMPTY_CHECK).fetchone()
        version = conn.execute("show server_version").fetchone()
    server_major = _major(str(version[0])) if version else None
    if row is None or int(str(row[0])) != 0:
        raise BackupFailed(
            "not_empty", "restore only into an empty database; this one has tables"
        )

    errors = bytearray()
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
        [
            tool("pg_restore", embedded=embedded, server_major=server_major),
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={conninfo.get('dbname', '')}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(conninfo),
    )
    assert process.stdin is not None
    assert process.stderr is not None
    drain = _drain(process.stderr, errors)
    try:
        for chunk in _plaintext(objects, keystore, manifest, progress):
            process.stdin.write(chunk)
        process.stdin.close()
    except BrokenPipeError:
        process.wait()
        drain.join(timeout=10)
        raise BackupFailed(
            "pg_restore", f"pg_restore failed: {_tail(errors)}"
        ) from None
    except BaseException:
        # Kill before stdin closes: pg_restore must never see a clean end of a
        # stream that failed, or it could commit a partial restore.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        raise
    code = process.wait()
    drain.join(timeout=10)
    if code != 0:
        raise BackupFailed("pg_restore", f"pg_restore failed: {_tail(errors)}")
    return manifest
