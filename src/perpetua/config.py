"""Settings, read once at start from flags and environment and validated before
anything listens or connects: a setting that would weaken a safeguard stops the start
with a reason instead of being quietly accepted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "./perpetua-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = None
    service_database_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    smtp_url: str | None = None
    public_origin: str | None = None
    trial_days: int = 14
    session_idle_minutes: int = 15
    session_absolute_hours: int = 12
    log_format: str = "json"
    extra: dict[str, str] = field(default_factory=dict)
    # Encrypted blobs and backups: `<data-dir>/blobs` unless an S3 URL is set.
    blob_store_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Witnessing: signed audit checkpoints copied to a bucket under Object Lock
    # (`audit/witness_store.py`); off unless a store URL is set.
    witness_store_url: str | None = None
    witness_s3_endpoint_url: str | None = None
    witness_s3_region: str | None = None
    witness_retention_days: str | None = None
    # Twilio's REST API, where practices' recordings are fetched from
    # (`calls/twilio.py`); another base is for tests against a local stand-in.
    twilio_api_base: str | None = None

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def origin(self) -> str:
        """The origin browsers use; forms from any other origin are refused."""
        if self.public_origin:
            return self.public_origin.rstrip("/")
        wildcard = ("127.0.0.1", "0.0.0.0", "::")  # noqa: S104 - compared, not bound
        host = "localhost" if self.host in wildcard else self.host
        return f"https://{host}:{self.port}"


def resolve_data_dir(flag: str | None) -> Path:
    raw = flag or os.environ.get("PERPETUA_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def load_settings(
    *,
    data_dir: str | None = None,
    host: str | None = None,
    port: int | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Settings:
    """Settings from flags first, then environment, then defaults."""
    env = os.environ
    cert = tls_cert or env.get("PERPETUA_TLS_CERT")
    key = tls_key or env.get("PERPETUA_TLS_KEY")
    return Settings(
        data_dir=resolve_data_dir(data_dir),
        database_url=env.get("DATABASE_URL") or None,
        service_database_url=env.get("SERVICE_DATABASE_URL") or None,
        host=host or env.get("PERPETUA_HOST") or DEFAULT_HOST,
        port=port or int(env.get("PERPETUA_PORT") or DEFAULT_PORT),
        tls_cert=Path(cert) if cert else None,
        tls_key=Path(key) if key else None,
        smtp_url=env.get("PERPETUA_SMTP_URL") or None,
        public_origin=env.get("PERPETUA_PUBLIC_ORIGIN") or None,
        log_format=env.get("PERPETUA_LOG_FORMAT") or "json",
        blob_store_url=env.get("PERPETUA_BLOB_STORE") or None,
        s3_endpoint_url=env.get("PERPETUA_S3_ENDPOINT_URL") or None,
        s3_region=env.get("PERPETUA_S3_REGION") or None,
        witness_store_url=env.get("PERPETUA_WITNESS_STORE") or None,
        witness_s3_endpoint_url=env.get("PERPETUA_WITNESS_S3_ENDPOINT_URL") or None,
        witness_s3_region=env.get("PERPETUA_WITNESS_S3_REGION") or None,
        witness_retention_days=env.get("PERPETUA_WITNESS_RETENTION_DAYS") or None,
        twilio_api_base=env.get("PERPETUA_TWILIO_API_BASE") or None,
    )
