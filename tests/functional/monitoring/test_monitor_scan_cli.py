"""`perpetua monitor scan` over a long window on a demo installation: it makes the
roll-up of actor-days current first, raises what it finds once, and refuses a
window that ends before it starts."""

from __future__ import annotations

import datetime as dt

from tests.conftest import admin_connection, scratch_dir
from tests.support.server import perpetua

from perpetua.config import Settings
from perpetua.db.target import open_target


def test_a_backfill_builds_the_roll_up_and_raises_each_finding_once():
    data_dir = scratch_dir("perpetua-monitor-scan-") / "data"
    demo = perpetua("demo", "--json", data_dir=data_dir, timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).date().isoformat()

    first = perpetua("monitor", "scan", "--since", since, data_dir=data_dir)
    again = perpetua("monitor", "scan", "--since", since, data_dir=data_dir)

    assert first.returncode == 0, first.stderr[-2000:]
    assert again.returncode == 0, again.stderr[-2000:]
    assert first.stdout.strip().endswith("new alert(s)")
    assert again.stdout.strip().endswith(" 0 new alert(s)")
    with (
        open_target(Settings(data_dir=data_dir)) as target,
        admin_connection(target) as conn,
    ):
        built = conn.execute(
            "select count(*) from monitor.actor_day_builds where day >= %s", (since,)
        ).fetchone()
    # The three finished days of the window, built before the scan read them.
    assert built == (3,)


def test_a_window_that_ends_before_it_starts_is_refused():
    data_dir = scratch_dir("perpetua-monitor-scan-") / "data"
    result = perpetua(
        "monitor",
        "scan",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-01",
        data_dir=data_dir,
    )
    assert result.returncode != 0
    assert "--since must be before --until" in result.stderr
