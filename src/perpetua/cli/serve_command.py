"""`perpetua serve`."""

from __future__ import annotations

import argparse
from typing import Any

from perpetua.cli.common import add_data_dir
from perpetua.config import DEFAULT_HOST, DEFAULT_PORT, load_settings
from perpetua.observability.logging import configure_logging


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the HTTPS service, its database and its background jobs",
        description="Run Perpetua over HTTPS (TLS 1.3 only) with its embedded "
        "PostgreSQL (or DATABASE_URL) and its background jobs.",
    )
    add_data_dir(parser)
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain to serve")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    from perpetua.server import serve

    settings = load_settings(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    configure_logging(settings.log_format)
    serve(settings)
    return 0
