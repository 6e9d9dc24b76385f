"""The embedded PostgreSQL server: pip-installed binaries (from `pgserver`), files
under the data directory, reachable only through a Unix socket, with SCRAM passwords
for every role. Several Perpetua processes may share one server: each holds it while
it runs, and the last one to let go stops it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from perpetua.db.secrets_dir import read_or_create_secret
from perpetua.errors import ConfigError

ADMIN_ROLE = "perpetua_admin"
POSTGRES_OS_USER = "perpetua-pg"

# Logging statements or error DETAIL lines would put values (emails, and later PHI)
# into the server log, so the embedded server logs neither.
SERVER_SETTINGS = """\
# Written by Perpetua: the embedded server listens on a Unix socket only.
listen_addresses = ''
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
log_min_error_statement = panic
log_error_verbosity = terse
log_statement = 'none'
log_min_duration_statement = -1
max_connections = 200
shared_buffers = '128MB'
"""

HBA = """\
# Written by Perpetua: every connection authenticates with a SCRAM password.
local all all scram-sha-256
"""


def _bin_dir() -> Path:
    # Only pgserver's bundled binaries are used; importing the package itself would
    # start its own server machinery, so locate it without importing.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the pgserver package (embedded PostgreSQL) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def pg_binary(name: str) -> str:
    return str(_bin_dir() / name)


def process_alive(pid: int) -> bool:
    """Whether a process runs. A zombie (exited, not yet reaped: common in
    containers whose first process reaps nothing) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass(frozen=True)
class PostmasterInfo:
    pid: int
    port: int
    socket_dir: Path
    status: str


class EmbeddedPostgres:
    """One PostgreSQL cluster under `<data_dir>/pg`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pg"
        self.run_dir = data_dir / "run"
        self.holders_dir = self.run_dir / "pg-holders"
        self._held = False

    # -- identity of the OS user that runs postgres --------------------------------

    def _os_user(self) -> pwd.struct_passwd | None:
        """PostgreSQL refuses to run as root, so root runs it as a system user."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(POSTGRES_OS_USER)
        except KeyError:
            subprocess.run(  # noqa: S603 - fixed arguments, no shell
                [  # noqa: S607 - useradd from the system PATH, as root
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    POSTGRES_OS_USER,
                ],
                check=True,
                capture_output=True,
            )
            return pwd.getpwnam(POSTGRES_OS_USER)

    def _run_as_postgres(
        self, args: list[str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        user = self._os_user()
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid}
        result: subprocess.CompletedProcess[str] = subprocess.run(  # noqa: S603
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.data_dir,
            **kwargs,  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise ConfigError(
                f"embedded PostgreSQL command {Path(args[0]).name} failed: "
                f"{result.stderr.strip()[-800:]}"
            )
        return result

    def _prepare_for_os_user(self, path: Path) -> None:
        user = self._os_user()
        if user is None:
            return
        os.chown(path, user.pw_uid, user.pw_gid)
        # The postgres user must be able to walk down to its folder.
        for parent in [self.data_dir, *self.data_dir.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)

    # -- layout --------------------------------------------------------------------

    def socket_dir(self) -> Path:
        """The socket folder: inside the data directory unless that path is too long
        for a Unix socket, in which case a private folder in /tmp named by a hash."""
        preferred = self.run_dir / "pg-socket"
        if len(str(preferred / ".s.PGSQL.5432")) < 100:
            return preferred
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path("/tmp") / f"perpetua-pg-{digest}"  # noqa: S108 - 0700, no secrets

    def admin_password(self) -> str:
        return read_or_create_secret(self.data_dir, "db-admin.password")

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialize(self) -> None:
        """Create the cluster on first use; the admin password never leaves the
        data directory and the pwfile lives only as long as initdb runs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._make_run_dir()
        if self.initialized:
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # an initdb that died half-way
        password = self.admin_password()
        bootstrap = self.run_dir / "initdb"
        bootstrap.mkdir(mode=0o700, exist_ok=True)
        self._prepare_for_os_user(bootstrap)
        pwfile = bootstrap / "pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        self._prepare_for_os_user(pwfile)
        self.pgdata.mkdir(mode=0o700)
        self._prepare_for_os_user(self.pgdata)
        try:
            self._run_as_postgres(
                [
                    pg_binary("initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    ADMIN_ROLE,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--data-checksums",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
            bootstrap.rmdir()
        user = self._os_user()
        (self.pgdata / "perpetua.conf").write_text(SERVER_SETTINGS)
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude = 'perpetua.conf'\n")
        if user is not None:
            for name in ("perpetua.conf", "pg_hba.conf"):
                os.chown(self.pgdata / name, user.pw_uid, user.pw_gid)

    # -- running state -------------------------------------------------------------

    def postmaster(self) -> PostmasterInfo | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 8:
            return None
        pid = int(lines[0])
        if not process_alive(pid):
            return None
        return PostmasterInfo(
            pid=pid,
            port=int(lines[3]),
            socket_dir=Path(lines[4]),
            status=lines[7].strip(),
        )

    def is_running(self) -> bool:
        info = self.postmaster()
        return info is not None and info.status == "ready"

    def _start(self) -> None:
        sock = self.socket_dir()
        sock.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prepare_for_os_user(sock)
        log_dir = self.run_dir / "pg-log"
        log_dir.mkdir(mode=0o700, exist_ok=True)
        self._prepare_for_os_user(log_dir)
        self._run_as_postgres(
            [
                pg_binary("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(log_dir / "server.log"),
                "-w",
                "-t",
                "90",
                "-o",
                f"-k {sock}",
                "start",
            ]
        )
        deadline = time.monotonic() + 30
        while not self.is_running():
            if time.monotonic() > deadline:
                raise ConfigError("embedded PostgreSQL did not become ready")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server. `immediate` aborts without a checkpoint, as a crash
        would; the next start then replays the write-ahead log."""
        if self.postmaster() is None:
            return
        self._run_as_postgres(
            [pg_binary("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"]
        )

    # -- shared holding ------------------------------------------------------------

    def _make_run_dir(self) -> None:
        # Traversable (not listable) by the postgres OS user, which needs to reach
        # its socket and log folders below; nothing secret is kept here.
        self.run_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o711)  # noqa: S103 - traverse only, as explained

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._make_run_dir()
        with (self.run_dir / "pg.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_holders(self) -> list[int]:
        alive = []
        for entry in self.holders_dir.glob("*"):
            pid = int(entry.name)
            if process_alive(pid):
                alive.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return alive

    def acquire(self) -> None:
        """Make sure the server runs and note that this process relies on it."""
        with self._locked():
            self.initialize()
            if not self.is_running():
                self._start()
            self.holders_dir.mkdir(mode=0o700, exist_ok=True)
            (self.holders_dir / str(os.getpid())).touch()
            self._held = True

    def release(self) -> None:
        """Let go; the last holder stops the server so no stray postgres remains."""
        if not self._held:
            return
        with self._locked():
            (self.holders_dir / str(os.getpid())).unlink(missing_ok=True)
            self._held = False
            if not self._live_holders():
                self.stop()

    def conninfo(self, user: str, password: str, dbname: str) -> dict[str, str]:
        info = self.postmaster()
        if info is None:
            raise ConfigError("embedded PostgreSQL is not running")
        return {
            "host": str(info.socket_dir),
            "port": str(info.port),
            "user": user,
            "password": password,
            "dbname": dbname,
        }
