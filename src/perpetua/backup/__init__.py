"""Encrypted database backups: `perpetua backup create | verify | restore`.

Guards the database copy that leaves the server. `pg_dump` (custom format) is
read through a pipe and encrypted as it streams, under a data key wrapped by the
platform's `backups` class key, straight into the object store (a folder under
the data directory, or S3); no plaintext dump ever touches a disk. Restoring
streams the other way, into `pg_restore` in a single transaction, so a stream
that fails authentication half-way commits nothing.

A backup holds wrapped data keys and field ciphertexts, never the class keys
(they stay in the keystore): once a retention period's key is destroyed, that
period's objects are unreadable from every backup too.

Each backup is two objects under `backups/<backup id>/`: `dump.ppsb` (the
encrypted stream) and `manifest.json` (sizes, SHA-256 of the plaintext and of
the stored bytes, key version, PostgreSQL versions, created time).
"""

from perpetua.backup.manifest import Manifest
from perpetua.backup.service import (
    BackupFailed,
    create_backup,
    list_backups,
    restore_backup,
    verify_backup,
)

__all__ = [
    "BackupFailed",
    "Manifest",
    "create_backup",
    "list_backups",
    "restore_backup",
    "verify_backup",
]
