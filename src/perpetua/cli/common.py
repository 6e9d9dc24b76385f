"""Options and connections the subcommands share."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from perpetua.access.claims import system_claims
from perpetua.errors import InvalidInput


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $PERPETUA_DATA_DIR or ./perpetua-data)",
    )


def count_bar(*, show: bool | None = None, transient: bool = True) -> Progress:
    """A bar counting items done out of a total, drawn on standard error, so that
    standard output stays the command's result. Shown on a terminal only, unless
    `show` says otherwise."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=transient,
        disable=not (sys.stderr.isatty() if show is None else show),
        console=Console(stderr=True),
    )


def practice_arg(text: str | None) -> uuid.UUID | None:
    """A `--practice ID` value, refused with a clear error when not a UUID."""
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput("practice id must be a UUID") from None


def owner_as_system(owner_conninfo: str, purpose: str) -> psycopg.Connection[Any]:
    """An autocommit connection as the database owner acting as the system.

    The owner is under forced row-level security like every role; only with
    system claims may it read every practice's audit log (policy
    events_sealer), as the audit commands must.
    """
    conn = psycopg.connect(owner_conninfo, autocommit=True)
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (json.dumps(system_claims(purpose).as_json()),),
    )
    return conn
