"""`perpetua calls import DIR`: manifests with recordings and transcripts beside
them go through the same ingestion as the API; a refused file is named and the
others are still imported."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import scratch_dir
from tests.functional.calls.helpers import CARD, make_wav
from tests.support.world import build_world

from perpetua.cli.calls_commands import import_directory
from perpetua.cli.main import build_parser


@pytest.fixture
def folder() -> Iterator[Path]:
    made = scratch_dir("calls-import-")
    yield made
    shutil.rmtree(made)


def test_import_loads_a_directory_and_names_what_it_refused(
    client, target, clock, folder
):
    world = build_world(client, target)
    started = (clock.now() - dt.timedelta(hours=2)).isoformat()
    (folder / "a.wav").write_bytes(make_wav(1.0))
    (folder / "a.txt").write_text("Agent: Hello\nCaller: I need a new time")
    (folder / "a.call.json").write_text(
        json.dumps(
            {
                "direction": "inbound",
                "started_at": started,
                "duration_seconds": 60,
                "recording": "a.wav",
                "transcript": "a.txt",
            }
        )
    )
    (folder / "b.txt").write_text(f"Caller: my card is {CARD}")
    (folder / "b.call.json").write_text(
        json.dumps(
            {"direction": "outbound", "started_at": started, "transcript": "b.txt"}
        )
    )
    (folder / "c.call.json").write_text(
        json.dumps({"direction": "inbound", "started_at": started, "recording": "../x"})
    )

    report = client.portal.call(
        lambda: import_directory(
            client.app.state.calls,
            uuid.UUID(world.practice_id),
            folder,
            show_progress=False,
        )
    )
    assert report.imported == 2
    assert report.recordings == 1
    assert report.transcripts == 2
    assert report.redactions == 1
    assert [name for name, _ in report.failed] == ["c.call.json"]

    args = build_parser().parse_args(
        ["calls", "import", str(folder), "--practice", world.practice_id]
    )
    assert args.handler.__name__ == "run_import"
    sweep = build_parser().parse_args(["retention", "sweep"])
    assert sweep.handler.__name__ == "run_sweep"
