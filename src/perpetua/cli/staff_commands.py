"""`perpetua staff ...`: operators make accounts for Perpetua's own staff.

A staff account has no practice, hence no way to PHI, and gets no session until
it has a second factor: the command prints a one-time enrolment link (24 hours)
that the person opens to choose a password and enrol one.
"""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from perpetua.cli.common import add_data_dir
from perpetua.config import load_settings
from perpetua.db.target import open_target
from perpetua.identity.staff import create_staff


def register(sub: Any) -> None:
    staff = sub.add_parser("staff", help="accounts for Perpetua's own staff")
    staff_sub = staff.add_subparsers(
        dest="staff_command", required=True, metavar="COMMAND"
    )
    create = staff_sub.add_parser(
        "create", help="create a staff account and print its enrolment link"
    )
    add_data_dir(create)
    create.add_argument("email")
    create.add_argument("--name", default="Perpetua staff", help="full name")
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace, _extra: list[str]) -> int:
    settings = load_settings(data_dir=args.data_dir)
    with (
        open_target(settings) as target,
        psycopg.connect(target.conninfo("owner")) as conn,
    ):
        user_id, link = create_staff(conn, args.email, args.name, settings.origin)
    print(f"staff account {user_id} created")
    print("Give this one-time enrolment link to the person (valid 24 hours):")
    print(link)
    return 0
