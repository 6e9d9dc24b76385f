"""`perpetua serve`: one process tree holding the embedded database, the HTTPS
service and its background jobs. A second serve on the same data directory refuses
to start rather than share it."""

from __future__ import annotations

import fcntl
import os
import signal
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import uvicorn

from perpetua.config import Settings
from perpetua.db.migrations import migrate
from perpetua.db.pool import Database
from perpetua.db.target import check_service_role, open_target
from perpetua.errors import ConfigError
from perpetua.observability.logging import get_logger
from perpetua.tls import ensure_self_signed, server_context
from perpetua.web.app import create_app

log = get_logger("perpetua.serve")


class AlreadyServing(ConfigError):
    code = "already_serving"


@contextmanager
def serve_lock(data_dir: Path) -> Iterator[None]:
    run = data_dir / "run"
    run.mkdir(mode=0o711, parents=True, exist_ok=True)
    path = run / "serve.lock"
    handle: IO[str] = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyServing(
            f"another `perpetua serve` (pid {holder}) is already running on the data "
            f"directory {data_dir}; stop it first or use a different --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def tls_files(settings: Settings) -> tuple[Path, Path]:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("--tls-cert and --tls-key must be given together")
    if settings.tls_cert and settings.tls_key:
        return settings.tls_cert, settings.tls_key
    return ensure_self_signed(settings.data_dir)


class Tls13Config(uvicorn.Config):
    """uvicorn builds its own SSL context; replace it with one that refuses
    everything older than TLS 1.3."""

    def __init__(self, *args: object, context: ssl.SSLContext, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._context = context

    def load(self) -> None:
        super().load()
        self.ssl = self._context


def serve(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with serve_lock(settings.data_dir), open_target(settings) as target:
        applied = migrate(target.conninfo("owner"))
        check_service_role(target)
        cert, key = tls_files(settings)
        context = server_context(cert, key)
        app = create_app(settings, Database(target.conninfo("service")))
        log.info(
            "serving",
            url=f"https://{settings.host}:{settings.port}",
            migrations_applied=len(applied),
            embedded_database=settings.embedded,
        )
        config = Tls13Config(
            app,
            host=settings.host,
            port=settings.port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            context=context,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
        # uvicorn re-raises SIGTERM once it has shut down; turned into SystemExit,
        # it unwinds through the blocks above, so the embedded database is let go
        # (and stopped if nothing else holds it) instead of left running.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.Server(config).run()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
