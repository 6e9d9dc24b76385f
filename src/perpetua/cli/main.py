"""Entry point of the `perpetua` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import psycopg

from perpetua.cli import (
    audit_commands,
    backup_commands,
    calls_commands,
    db_commands,
    demo_command,
    export_commands,
    keys_commands,
    monitor_commands,
    practice_commands,
    redact_command,
    retention_commands,
    serve_command,
    simulate_command,
    staff_commands,
)
from perpetua.errors import PerpetuaError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpetua",
        description="Perpetua: a HIPAA-grade front office for medical practices.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (
        serve_command,
        db_commands,
        practice_commands,
        demo_command,
        export_commands,
        redact_command,
        staff_commands,
        audit_commands,
        calls_commands,
        retention_commands,
        keys_commands,
        backup_commands,
        monitor_commands,
        simulate_command,
    )
    for module in commands:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra) or 0)
    except PerpetuaError as exc:
        print(f"perpetua: {exc.detail}", file=sys.stderr)
        return 2
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        # A database that Perpetua never migrated: say what to do, not where
        # in the code it was noticed.
        print(
            "perpetua: this database holds no Perpetua schema yet; run "
            "`perpetua migrate` (or `perpetua serve`, which migrates) first",
            file=sys.stderr,
        )
        return 2
    except psycopg.OperationalError as exc:
        # libpq's first line names the server and the reason, never a password.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"perpetua: cannot use the database: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
