"""`perpetua practice ...`: operators' commands on practices (plans)."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import psycopg

from perpetua.access.claims import Claims, system_claims
from perpetua.cli.common import add_data_dir
from perpetua.config import load_settings
from perpetua.db.target import open_target
from perpetua.errors import InvalidInput, NotFound


def register(sub: Any) -> None:
    practice = sub.add_parser("practice", help="operators' commands on practices")
    practice_sub = practice.add_subparsers(
        dest="practice_command", required=True, metavar="COMMAND"
    )
    plan = practice_sub.add_parser(
        "set-plan", help="put a practice on a paid plan, ending read-only mode"
    )
    add_data_dir(plan)
    plan.add_argument("practice_id")
    plan.add_argument("--plan", default="standard", choices=("standard",))
    plan.set_defaults(handler=run_set_plan)


def run_set_plan(args: argparse.Namespace, _extra: list[str]) -> int:
    try:
        practice_id = uuid.UUID(args.practice_id)
    except ValueError:
        raise InvalidInput("practice id must be a UUID") from None
    settings = load_settings(data_dir=args.data_dir)
    claims = system_claims("cli-set-plan")
    scoped = Claims(
        actor_kind=claims.actor_kind,
        actor_id=claims.actor_id,
        request_id=claims.request_id,
        practice_id=practice_id,
    )
    with (
        open_target(settings) as target,
        psycopg.connect(target.conninfo("owner")) as conn,
    ):
        # The owner is under forced row-level security too: act as the system
        # within this one practice.
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps(scoped.as_json()),),
        )
        cur = conn.execute(
            "update app.practices set plan = %s, plan_started_at = now() where id = %s",
            (args.plan, practice_id),
        )
        if cur.rowcount == 0:
            raise NotFound("no practice with that id")
    print(f"practice {practice_id} is on the {args.plan} plan")
    return 0
