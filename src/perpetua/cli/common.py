"""Options every subcommand shares."""

from __future__ import annotations

import argparse


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $PERPETUA_DATA_DIR or ./perpetua-data)",
    )
