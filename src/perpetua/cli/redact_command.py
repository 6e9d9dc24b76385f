"""`perpetua redact`: card-number redaction of text on stdin, for operators.

The input may hold payment card data, so this command keeps it in memory only: it
reads stdin, writes the redacted text (or, with --json, the redacted text and the
spans found) to stdout, and never logs, stores or echoes the input anywhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perpetua.redaction import redact_text


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "redact",
        help="replace card numbers and security codes in text read from stdin",
        description="Read text from stdin and write it to stdout with every payment "
        "card number and security code replaced by a marker.",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the redacted text and the character spans found, as JSON",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    text = sys.stdin.read()
    result = redact_text(text)
    if args.json:
        # The spans carry offsets and kinds only, never the digits they replaced.
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    else:
        sys.stdout.write(result.text)
    sys.stdout.flush()
    return 0
