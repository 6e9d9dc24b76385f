"""`perpetua migrate`, `perpetua db url` and `perpetua db shell`.

Each works whether or not `perpetua serve` is running: it uses the running embedded
server or starts it for its own use and stops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from typing import Any

from perpetua.cli.common import add_data_dir
from perpetua.config import load_settings
from perpetua.db.embedded import pg_binary
from perpetua.db.migrations import migrate
from perpetua.db.target import check_service_role, open_target


def register(sub: Any) -> None:
    migrate_parser = sub.add_parser(
        "migrate", help="apply pending database migrations as the owner role"
    )
    add_data_dir(migrate_parser)
    migrate_parser.set_defaults(handler=run_migrate)

    db = sub.add_parser("db", help="database access for operators")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    url = db_sub.add_parser("url", help="print a libpq URL for the database")
    add_data_dir(url)
    url.add_argument("--as", dest="role", choices=("owner", "service"), default="owner")
    url.set_defaults(handler=run_url)
    shell = db_sub.add_parser(
        "shell", help="psql as a role; arguments after -- go to psql"
    )
    add_data_dir(shell)
    shell.add_argument(
        "--as", dest="role", choices=("owner", "service"), default="owner"
    )
    shell.set_defaults(handler=run_shell, accepts_extra=True)


def run_migrate(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        applied = migrate(target.conninfo("owner"))
        check_service_role(target)
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print("database is up to date")
    return 0


def run_url(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    with open_target(settings) as target:
        print(target.url(args.role))
    return 0


def _psql() -> str:
    bundled = pg_binary("psql")
    return bundled if os.path.exists(bundled) else (shutil.which("psql") or "psql")


def run_shell(args: argparse.Namespace, extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    psql_args = extra[1:] if extra[:1] == ["--"] else extra
    with open_target(settings) as target:
        migrate(target.conninfo("owner"))
        info = target.owner if args.role == "owner" else target.service
        # The password goes through the environment, never the command line,
        # where any local user could read it from the process list.
        env = dict(os.environ)
        env.update(
            {
                "PGHOST": info.get("host", ""),
                "PGPORT": info.get("port", "5432"),
                "PGUSER": info.get("user", ""),
                "PGPASSWORD": info.get("password", ""),
                "PGDATABASE": info.get("dbname", ""),
            }
        )
        for key in ("sslmode", "sslrootcert"):
            if key in info:
                env["PG" + key.upper()] = info[key]
        return subprocess.call([_psql(), *psql_args], env=env)  # noqa: S603
